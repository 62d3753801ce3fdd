//! DICOMweb front end (PS3.18): STOW-RS, QIDO-RS, WADO-RS and WADO-URI over the archive
//! service. This is the only crate that knows HTTP. Handlers translate requests into calls on
//! [`vna_archive::Archive`] and its errors into statuses through one table (`error.rs`). It also
//! serves the small administrative API ([`admin_router`]).
//!
//! # How it is built
//!
//! The only crate that knows HTTP. `stow.rs` (PS3.18 §10.5), `qido.rs`/`qido_json.rs` (§10.6),
//! `wado.rs` (§10.4; each instance in the first syntax of the client's Accept the archive can
//! deliver it in — no parameter means Explicit VR Little Endian (§8.7.3.5.2), `*` the stored
//! bytes, Implicit VR Little Endian never — through `Archive::open_as`: uncompressed syntaxes
//! re-encoded by `vna_dicom::recode`, compressed ones decoded frame by frame; bulk data with
//! Range, a video's Pixel Data as its stream, an image's as its frames; frame lists capped by
//! `query.max_list_items`), `range.rs` (RFC 9110 §14, one byte range, the SHA-256 ETag),
//! `rendered.rs` (§10.4.1.1.3–4: rendered and thumbnail at every level,
//! `accept`/`quality`/`viewport`/`window` parameters, a study or series as multipart of what
//! decodes, videos as `video/mp4`/`video/mpeg` from the stored fragments with Range, If-Range
//! and If-None-Match on the SHA-256 ETag), `nondicom.rs` (`POST /api/non-dicom`: multipart/form-data,
//! metadata first and checked before the file is spooled to `data_dir/spool`, emptied when a
//! server starts alone on its data directory), `wado_uri.rs` (§9: rendered JPEG by default for
//! one frame, `application/dicom` in `transferSyntax`), `accept.rs` (media-type negotiation), `multipart.rs`
//! (streamed multipart/related bodies; the first part is opened before the status line so that an
//! unreadable store is a 503, not a cut connection), `error.rs` (ErrorClass → HTTP status, the only
//! such table), `search.rs` (`GET /api/search`, search by meaning, and `GET /admin/search`, the
//! index's position and lag), `admin.rs` (`/admin`: versions of an instance, `GET …/protection` and
//! `PUT …/legal-hold`; the admin API grows here until it deserves its own crate), `fhir.rs` (FHIR R4
//! at `/fhir` for the patient record: ImagingStudy read and search, the CapabilityStatement).

mod accept;
mod admin;
mod auth;
mod error;
mod fhir;
mod multipart;
mod nondicom;
mod qido;
mod qido_json;
mod range;
mod rendered;
mod search;
mod stow;
mod wado;
mod wado_uri;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use vna_archive::{Archive, Principal};

pub use admin::admin_router;
pub use auth::layer as authenticate;

/// The `[http]` and `[query]` settings this crate needs.
#[derive(Debug, Clone)]
pub struct DicomWebConfig {
    /// Path prefix, e.g. `/dicom-web`.
    pub root: String,
    /// Public scheme+authority for URLs in responses; empty: from the Host header.
    pub public_url: String,
    pub default_limit: u32,
    pub max_limit: u32,
    /// Where uploads of non-DICOM files are spooled while they are probed and stored.
    pub spool_dir: std::path::PathBuf,
    /// Port the HTTP listener is bound to: used when a client's Host header has no port
    /// (dicomweb-client sends the bare host name), so that URLs in responses still work.
    pub listen_port: Option<u16>,
    /// The listener speaks TLS: URLs in responses are `https`.
    pub tls: bool,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub archive: Arc<Archive>,
    pub config: Arc<DicomWebConfig>,
    /// Who is asking. The router's own state holds [`nobody`]; [`Authed`] puts in the
    /// request's principal, so a handler that forgets to ask is refused, not trusted.
    pub who: Arc<Principal>,
}

/// A principal with no permission that sees nothing.
fn nobody() -> Arc<Principal> {
    Arc::new(Principal::new("nobody", vna_archive::PrincipalKind::Anonymous, [], Some(Vec::new())))
}

/// The state of a request made by the principal [`auth::layer`] authenticated. Without that
/// layer the request is refused (500: a server built without authentication is a bug).
pub(crate) struct Authed(pub AppState);

impl axum::extract::FromRequestParts<AppState> for Authed {
    type Rejection = axum::http::StatusCode;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let who = parts.extensions.get::<Arc<Principal>>().cloned().ok_or_else(|| {
            tracing::error!("a request reached a handler without an authenticated principal");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        })?;
        Ok(Authed(AppState { who, ..state.clone() }))
    }
}

/// The DICOMweb routes, nested under `config.root`.
pub fn router(archive: Arc<Archive>, config: DicomWebConfig) -> Router {
    let root = config.root.clone();
    let state = AppState { archive, config: Arc::new(config), who: nobody() };
    let api = Router::new()
        .route("/studies", post(stow::store).get(qido::studies))
        .route("/studies/{study}", post(stow::store_in_study).get(wado::study))
        .route("/studies/{study}/metadata", get(wado::study_metadata))
        .route("/studies/{study}/series", get(qido::study_series))
        .route("/studies/{study}/instances", get(qido::study_instances))
        .route("/studies/{study}/series/{series}", get(wado::series))
        .route("/studies/{study}/series/{series}/metadata", get(wado::series_metadata))
        .route("/studies/{study}/series/{series}/instances", get(qido::series_instances))
        .route("/studies/{study}/series/{series}/instances/{instance}", get(wado::instance))
        .route("/studies/{study}/series/{series}/instances/{instance}/metadata", get(wado::instance_metadata))
        .route("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", get(wado::frames))
        .route("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{range}", get(wado::bulkdata))
        .route("/studies/{study}/rendered", get(rendered::study))
        .route("/studies/{study}/series/{series}/rendered", get(rendered::series))
        .route("/studies/{study}/series/{series}/instances/{instance}/rendered", get(rendered::instance))
        .route("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered", get(rendered::frames))
        .route("/studies/{study}/thumbnail", get(rendered::study_thumbnail))
        .route("/studies/{study}/series/{series}/thumbnail", get(rendered::series_thumbnail))
        .route("/studies/{study}/series/{series}/instances/{instance}/thumbnail", get(rendered::instance_thumbnail))
        .route("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail", get(rendered::frame_thumbnail))
        .route("/series", get(qido::all_series))
        .route("/instances", get(qido::all_instances))
        .route("/wado", get(wado_uri::wado))
        // Bodies are streamed into the ingest pipeline, which enforces the per-object limit;
        // no whole-body buffering limit applies.
        .layer(DefaultBodyLimit::disable())
        .with_state(state.clone());
    let search = Router::new()
        .route("/api/search", get(search::search))
        .route("/api/reports", post(search::add_report))
        .layer(DefaultBodyLimit::max(vna_archive::MAX_REPORT_BYTES + 4096))
        .with_state(state.clone());
    let non_dicom =
        Router::new().route("/api/non-dicom", post(nondicom::store)).layer(DefaultBodyLimit::disable()).with_state(state.clone());
    Router::new().nest(&root, api).merge(non_dicom).merge(search).merge(fhir::router(state))
}

/// What is served without authentication: the FHIR `CapabilityStatement` (`/fhir/metadata`),
/// which a client reads before it knows how to authenticate (it holds no patient data).
pub fn public_router(archive: Arc<Archive>, config: DicomWebConfig) -> Router {
    fhir::public_router(AppState { archive, config: Arc::new(config), who: nobody() })
}

/// Scheme and authority plus DICOMweb root, for RetrieveURL and BulkDataURI.
pub(crate) fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    format!("{}{}", origin(state, headers), state.config.root)
}

/// Scheme and authority of the URLs we write: `http.public_url`, else the request's Host.
pub(crate) fn origin(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    if !state.config.public_url.is_empty() {
        return state.config.public_url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .unwrap_or("localhost");
    let has_port =
        host.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) && !host.ends_with(']');
    let (scheme, default_port) = if state.config.tls { ("https", 443) } else { ("http", 80) };
    match state.config.listen_port {
        Some(port) if !has_port && port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    }
}
