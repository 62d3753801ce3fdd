//! The real `vna` binary: `check-config`, `lifecycle check`, `import` (summary, exit codes, idempotence, opaque
//! blob keys) and `serve` (readiness line, QIDO over imported data, the object size limit from
//! the environment, clean exit on SIGTERM).

use std::path::Path;
use vna_e2e::binary::{self, Server};
use vna_e2e::fixtures::{ct_study, Ct};
use vna_e2e::http;

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent dir")).expect("creating fixture dirs");
    std::fs::write(path, bytes).expect("writing a fixture");
}

/// Six valid instances of one study (two series of three) spread over nested folders.
fn write_valid_tree(root: &Path) -> Vec<Ct> {
    let study = ct_study(2, 3);
    for (i, ct) in study.iter().enumerate() {
        let dir = if ct.series_number == 1 { root.join("a/series1") } else { root.join("b/c/series2") };
        write(&dir.join(format!("im{i}.dcm")), &ct.to_bytes());
    }
    study
}

/// The summary line `stored N, duplicates N, new versions N, rejected N (…)` as numbers.
fn summary_counts(stdout: &str) -> (u64, u64, u64, u64) {
    let line = stdout.lines().find(|l| l.starts_with("stored ")).unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let number_after = |label: &str| -> u64 {
        let rest = &line[line.find(label).unwrap_or_else(|| panic!("no '{label}' in {line}")) + label.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after '{label}' in {line}"))
    };
    (number_after("stored"), number_after("duplicates"), number_after("new versions"), number_after("rejected"))
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/vna.toml");
    let out = binary::run(&["check-config", example.to_str().expect("utf-8 path")], &[]);
    let (stdout, stderr) = binary::text(&out);
    assert!(out.status.success(), "check-config of config/vna.toml failed:\n{stdout}{stderr}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
}

#[test]
fn check_config_accepts_the_production_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/production.toml");
    let out = binary::run(&["check-config", example.to_str().expect("utf-8 path")], &[]);
    let (stdout, stderr) = binary::text(&out);
    assert!(out.status.success(), "check-config of config/production.toml failed:\n{stdout}{stderr}");
}

#[test]
fn check_config_names_an_unknown_key_in_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "version = 1\n[http]\nlistn = \"127.0.0.1:8080\"\n").expect("writing the config");
    let out = binary::run(&["check-config", file.to_str().expect("utf-8 path")], &[]);
    let (stdout, stderr) = binary::text(&out);
    assert!(!out.status.success(), "an unknown key was accepted:\n{stdout}");
    assert!(stderr.contains("listn"), "the error does not name the unknown key:\n{stderr}");
}

#[test]
fn lifecycle_check_passes_the_shipped_policies_and_fails_a_wrong_test_or_a_bad_file() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lifecycle-policies");
    let out = binary::run(&["lifecycle", "check", examples.to_str().expect("utf-8 path")], &[]);
    let (stdout, stderr) = binary::text(&out);
    assert!(out.status.success(), "lifecycle check of lifecycle-policies/ failed:\n{stdout}{stderr}");
    assert!(stdout.contains("0 failed, 0 conflicts") && stdout.contains("set hash "), "{stdout}");

    let dir = tempfile::tempdir().expect("temp dir");
    let video = std::fs::read_to_string(examples.join("video.toml")).expect("reading video.toml");
    std::fs::write(dir.path().join("video.toml"), video.replace("2036-02-01", "2031-02-01")).expect("writing");
    let out = binary::run(&["lifecycle", "check", dir.path().to_str().expect("utf-8 path")], &[]);
    let (stdout, _) = binary::text(&out);
    assert!(!out.status.success(), "a wrong expectation passed:\n{stdout}");
    assert!(stdout.contains("FAILED") && stdout.contains("retained until 2036-02-01"), "{stdout}");

    std::fs::write(dir.path().join("bad.toml"), "version = 1\n[[rules]]\nname = \"x\"\nretian = 3\n").expect("writing");
    let out = binary::run(&["lifecycle", "check", dir.path().to_str().expect("utf-8 path")], &[]);
    let (stdout, _) = binary::text(&out);
    assert!(!out.status.success() && stdout.contains("bad.toml") && stdout.contains("retian"), "{stdout}");
}

#[test]
fn check_config_rejects_an_unknown_environment_override() {
    let out = binary::run(&["check-config"], &[("VNA__HTTP__LISTN", "x")]);
    let (stdout, stderr) = binary::text(&out);
    assert!(!out.status.success(), "an unknown environment override was accepted:\n{stdout}");
    assert!(stderr.to_ascii_lowercase().contains("listn"), "the error does not name the setting:\n{stderr}");
}

#[test]
fn import_reports_rejections_is_rerunnable_and_serves_the_result() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    let data = tmp.path().join("data");
    let study = write_valid_tree(&src);
    write(&src.join("notes.txt"), b"this is not a DICOM file\n");
    let truncated = Ct::new_study().with_size(64, 64).to_bytes();
    write(&src.join("a/truncated.dcm"), &truncated[..truncated.len() / 2]);
    let evil = Ct { study_uid: "../../etc/passwd".into(), ..Ct::new_study() };
    write(&src.join("b/c/evil.dcm"), &evil.to_bytes());

    let import = || {
        let out = binary::run(&["--data-dir", data.to_str().expect("utf-8"), "import", "--quiet", src.to_str().expect("utf-8")], &[]);
        let (stdout, stderr) = binary::text(&out);
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = import();
    assert_eq!(code, Some(1), "first import exit code:\n{stdout}{stderr}");
    assert_eq!(summary_counts(&stdout), (6, 0, 0, 3), "first import:\n{stdout}");
    let reasons: Vec<&str> = stdout.lines().filter(|l| l.starts_with("rejected (")).collect();
    let listed: usize =
        reasons.iter().map(|l| l["rejected (".len()..].split(')').next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0)).sum();
    assert_eq!(listed, 3, "every rejected file is listed under a reason:\n{stdout}");
    for file in ["notes.txt", "truncated.dcm", "evil.dcm"] {
        assert!(stdout.contains(file), "{file} is not named among the rejected files:\n{stdout}");
    }
    assert!(reasons.iter().any(|r| r.contains("StudyInstanceUID")), "the invalid UID is not the stated reason:\n{stdout}");
    assert!(reasons.iter().all(|r| !r.contains("passwd")), "a rejection reason echoes the hostile value:\n{stdout}");

    let (code, stdout, stderr) = import();
    assert_eq!(code, Some(1), "second import exit code:\n{stdout}{stderr}");
    assert_eq!(summary_counts(&stdout), (0, 6, 0, 3), "second import:\n{stdout}");

    // Blob keys are opaque: no UID or patient data in any stored path; nothing escaped.
    let objects = vna_e2e::inproc::blob_files(&data.join("blobs"));
    assert_eq!(objects.len(), 6, "one blob per stored instance: {objects:?}");
    let first = &study[0];
    let mut secrets = vec![first.study_uid.clone(), first.patient_id.clone(), "Synthetic".to_owned(), "E2E".to_owned()];
    for ct in &study {
        secrets.push(ct.series_uid.clone());
        secrets.push(ct.sop_uid.clone());
    }
    for path in &objects {
        let relative = path.strip_prefix(&data).expect("under the data dir").to_string_lossy().into_owned();
        for secret in &secrets {
            assert!(!relative.contains(secret.as_str()), "blob path {relative} contains {secret}");
        }
    }
    let everything = vna_e2e::files_under(tmp.path());
    assert!(everything.iter().all(|p| !p.to_string_lossy().contains("passwd")), "a file was written from the hostile UID: {everything:?}");

    let server = Server::start(&data, &[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = http::client();
        let studies = http::qido_studies(&client, &server.base, &format!("StudyInstanceUID={}", first.study_uid)).await;
        assert_eq!(studies.len(), 1, "{studies:?}");
        let count = http::first_value(&studies[0], "00201208").and_then(|v| v.as_u64());
        assert_eq!(count, Some(6), "NumberOfStudyRelatedInstances: {}", studies[0]);
        let all = http::qido_studies(&client, &server.base, "").await;
        assert_eq!(all.len(), 1, "only the valid study is catalogued: {all:?}");
    });
    let status = server.stop();
    assert!(status.success(), "vna serve exited with {status} after SIGTERM");
}

#[test]
fn import_of_valid_files_only_exits_zero() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    write_valid_tree(&src);
    let data = tmp.path().join("data");
    let out = binary::run(&["--data-dir", data.to_str().expect("utf-8"), "import", "--quiet", src.to_str().expect("utf-8")], &[]);
    let (stdout, stderr) = binary::text(&out);
    assert!(out.status.success(), "import of valid files failed:\n{stdout}{stderr}");
    assert_eq!(summary_counts(&stdout), (6, 0, 0, 0), "{stdout}");
}

#[test]
fn serve_enforces_the_object_size_limit_from_the_environment() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[("VNA__INGEST__MAX_OBJECT_BYTES", "100000")]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = http::client();
        let big = Ct::new_study().with_size(320, 320);
        let big_bytes = big.to_bytes();
        assert!(big_bytes.len() > 200_000);
        let resp = http::stow(&client, &server.base, &[big_bytes]).await;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 413, "oversize instance: {body}");

        // Still serving; the small one is stored, the big one is not.
        let small = Ct::new_study();
        let resp = http::stow(&client, &server.base, &[small.to_bytes()]).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(http::qido_studies(&client, &server.base, &format!("StudyInstanceUID={}", small.study_uid)).await.len(), 1);
        assert!(http::qido_studies(&client, &server.base, &format!("StudyInstanceUID={}", big.study_uid)).await.is_empty());
    });
    assert!(vna_e2e::files_under(&data.join("blobs/tmp")).is_empty(), "a temporary blob was left behind");
    let status = server.stop();
    assert!(status.success(), "vna serve exited with {status} after SIGTERM");
}

#[test]
fn serve_refuses_any_calling_ae_beyond_loopback() {
    let data = tempfile::tempdir().expect("temp dir");
    let args = ["--data-dir", data.path().to_str().expect("utf-8"), "serve", "--http-listen", "127.0.0.1:0", "--dimse-listen", "0.0.0.0:0"];
    let out = binary::run(&args, &[]);
    let (stdout, stderr) = binary::text(&out);
    assert!(!out.status.success(), "started with any AE beyond loopback: {stdout}");
    assert!(stderr.contains("beyond loopback") && stderr.contains("dimse.known_aes"), "{stderr}");
    assert!(!stdout.contains("vna ready"), "{stdout}");
}
