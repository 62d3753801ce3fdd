//! Association negotiation (PS3.8 §7.1, §9.3.2-§9.3.4, Annex D): the acceptor's decision on an
//! A-ASSOCIATE-RQ (AE titles, application context, presentation contexts, maximum length) and
//! the transfer syntaxes and SOP classes this toolkit accepts.
//!
//! Ours rather than dicom-ul's `ServerAssociationOptions`: that acceptor matches abstract
//! syntaxes against an exact list (or accepts everything), and only accepts transfer syntaxes
//! known to dicom-rs's codec registry; an archive that stores as received needs every storage
//! SOP class, present and future, and a fixed list of syntaxes it never decodes.

use crate::association::PresentationContext;
use dicom_ul::pdu::{
    AssociationAC, AssociationRJ, AssociationRJResult, AssociationRJServiceUserReason, AssociationRJSource, AssociationRQ,
    PresentationContextResult, PresentationContextResultReason, UserVariableItem,
};

/// PS3.7 Annex A.2.1: the DICOM application context name.
pub const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";
/// Our implementation class UID and version name (PS3.7 Annex D.3.3.2).
pub const IMPLEMENTATION_CLASS_UID: &str = "1.2.826.0.1.3680043.10.1480.1";
pub const IMPLEMENTATION_VERSION_NAME: &str = "VNA";

/// Transfer syntaxes accepted for storage, as received (PS3.5 Annex A; PS3.6 Annex A).
/// The transfer syntaxes accepted in presentation contexts: the archive's one list
/// (`vna_dicom::ts::KNOWN`), so that what DIMSE negotiates and what every other ingest path
/// accepts are the same.
pub fn is_accepted_syntax(uid: &str) -> bool {
    vna_dicom::ts::is_known(uid)
}

/// Verification SOP class (PS3.4 Annex A).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// Storage SOP classes outside the `1.2.840.10008.5.1.4.1.1.` branch (PS3.4 Annex B.5).
const OTHER_STORAGE_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.34.7",  // RT Beams Delivery Instruction Storage
    "1.2.840.10008.5.1.4.34.10", // RT Brachy Application Setup Delivery Instruction Storage
    "1.2.840.10008.5.1.4.38.1",  // Hanging Protocol Storage
    "1.2.840.10008.5.1.4.39.1",  // Color Palette Storage
    "1.2.840.10008.5.1.4.43.1",  // Generic Implant Template Storage
    "1.2.840.10008.5.1.4.44.1",  // Implant Assembly Template Storage
    "1.2.840.10008.5.1.4.45.1",  // Implant Template Group Storage
];

/// A storage SOP class (PS3.4 Annex B.5): every class under `1.2.840.10008.5.1.4.1.1.` —
/// including ones newer than this code — and the few storage classes outside that branch.
/// Query/retrieve models (`…5.1.4.1.2.…`) and worklists are not storage classes.
pub fn is_storage_class(uid: &str) -> bool {
    uid.starts_with("1.2.840.10008.5.1.4.1.1.") || OTHER_STORAGE_CLASSES.contains(&uid)
}

/// What the acceptor checks before looking at presentation contexts.
#[derive(Debug, Clone)]
pub struct AcceptorPolicy {
    pub ae_title: String,
    pub allow_any_calling_ae: bool,
    /// Calling AE titles accepted when `allow_any_calling_ae` is false.
    pub known_calling_aes: Vec<String>,
    /// Our Maximum Length (PS3.8 §D.1).
    pub max_pdu_length: u32,
}

/// The acceptor's answer to an A-ASSOCIATE-RQ.
pub enum Decision {
    /// `window`: how many operations the requestor may have outstanding (1: one at a time).
    Accept {
        ac: AssociationAC,
        contexts: Vec<PresentationContext>,
        peer_max_pdu: u32,
        window: u16,
    },
    Reject(AssociationRJ),
}

fn reject(result: AssociationRJResult, source: AssociationRJSource) -> Decision {
    Decision::Reject(AssociationRJ { result, source })
}

/// The Asynchronous Operations Window sub-item (PS3.7 Table D.3-7): maximum number of
/// operations invoked, then performed, two bytes each, big endian.
pub(crate) const ASYNC_WINDOW_ITEM: u8 = 0x53;
/// C-STOREs of one association committed at once, at most, when the requestor asks for a
/// window: enough to hide a flush per store, few enough to bound what one association holds.
pub const MAX_OPERATIONS_PERFORMED: u16 = 16;

/// Decides on an A-ASSOCIATE-RQ. `accepts` says which abstract syntaxes the handler serves;
/// for each proposed context the first proposed transfer syntax [`is_accepted_syntax`] wins
/// (the requestor lists its preference first; we store as received).
pub fn decide(rq: &AssociationRQ, policy: &AcceptorPolicy, accepts: impl Fn(&str) -> bool) -> Decision {
    use AssociationRJServiceUserReason as User;
    // PS3.8 §9.3.2: bit 0 of the protocol version is version 1.
    if rq.protocol_version & 1 == 0 {
        return reject(
            AssociationRJResult::Permanent,
            AssociationRJSource::ServiceProviderASCE(dicom_ul::pdu::AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported),
        );
    }
    if rq.application_context_name.trim_end_matches(['\0', ' ']) != APPLICATION_CONTEXT {
        return reject(AssociationRJResult::Permanent, AssociationRJSource::ServiceUser(User::ApplicationContextNameNotSupported));
    }
    if rq.called_ae_title.trim() != policy.ae_title {
        return reject(AssociationRJResult::Permanent, AssociationRJSource::ServiceUser(User::CalledAETitleNotRecognized));
    }
    let calling = rq.calling_ae_title.trim();
    if !policy.allow_any_calling_ae && !policy.known_calling_aes.iter().any(|a| a == calling) {
        return reject(AssociationRJResult::Permanent, AssociationRJSource::ServiceUser(User::CallingAETitleNotRecognized));
    }
    let mut peer_max_pdu = dicom_ul::pdu::DEFAULT_MAX_PDU;
    let mut asked_window = None;
    for item in &rq.user_variables {
        match item {
            UserVariableItem::MaxLength(len) => peer_max_pdu = *len,
            UserVariableItem::Unknown(ASYNC_WINDOW_ITEM, v) if v.len() == 4 => asked_window = Some(u16::from_be_bytes([v[0], v[1]])),
            _ => {}
        }
    }
    let mut results = Vec::with_capacity(rq.presentation_contexts.len());
    let mut contexts = Vec::new();
    for pc in &rq.presentation_contexts {
        let abstract_syntax = pc.abstract_syntax.trim_end_matches(['\0', ' ']).to_owned();
        let (reason, ts) = if !accepts(&abstract_syntax) {
            (PresentationContextResultReason::AbstractSyntaxNotSupported, None)
        } else {
            match pc.transfer_syntaxes.iter().map(|t| t.trim_end_matches(['\0', ' '])).find(|t| is_accepted_syntax(t)) {
                Some(ts) => (PresentationContextResultReason::Acceptance, Some(ts.to_owned())),
                None => (PresentationContextResultReason::TransferSyntaxesNotSupported, None),
            }
        };
        // PS3.8 §9.3.3.2: the transfer syntax field is ignored unless accepted; send one anyway.
        let transfer_syntax = ts.clone().unwrap_or_else(|| vna_dicom::ts::IMPLICIT_VR_LITTLE_ENDIAN.to_owned());
        results.push(PresentationContextResult { id: pc.id, reason, transfer_syntax });
        if let Some(transfer_syntax) = ts {
            contexts.push(PresentationContext { id: pc.id, abstract_syntax, transfer_syntax });
        }
    }
    let mut user_variables = vec![
        UserVariableItem::MaxLength(policy.max_pdu_length),
        UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_owned()),
        UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION_NAME.to_owned()),
    ];
    user_variables.extend(role_selection(rq, &contexts));
    // PS3.7 §D.3.3.3: the requestor proposes how many operations it would invoke without waiting
    // (0: no limit); we perform up to MAX_OPERATIONS_PERFORMED at once and invoke one at a time.
    // Answered only when asked: the sub-item is optional and some peers mishandle it.
    let window = match asked_window {
        Some(0) => MAX_OPERATIONS_PERFORMED,
        Some(n) => n.min(MAX_OPERATIONS_PERFORMED),
        None => 1,
    };
    if asked_window.is_some() {
        let [hi, lo] = window.to_be_bytes();
        user_variables.push(UserVariableItem::Unknown(ASYNC_WINDOW_ITEM, vec![0, 1, hi, lo]));
    }
    let ac = AssociationAC {
        protocol_version: 1,
        calling_ae_title: rq.calling_ae_title.clone(),
        called_ae_title: rq.called_ae_title.clone(),
        application_context_name: APPLICATION_CONTEXT.to_owned(),
        presentation_contexts: results,
        user_variables,
    };
    Decision::Accept { ac, contexts, peer_max_pdu, window }
}

/// SCP/SCU Role Selection (PS3.7 §D.3.3.4): the requestor's proposed roles are accepted as
/// proposed for every storage SOP class with an accepted context — a C-GET requestor asks to
/// be the storage SCP so that we can send it C-STORE sub-operations (PS3.4 §C.4.3). Other
/// classes get no item back, which keeps the default roles.
fn role_selection(rq: &AssociationRQ, contexts: &[PresentationContext]) -> Vec<UserVariableItem> {
    let mut items: Vec<UserVariableItem> = Vec::new();
    for item in &rq.user_variables {
        let UserVariableItem::ScuScpRoleSelectionSubItem(uid, roles) = item else { continue };
        let uid = uid.trim_end_matches(['\0', ' ']);
        let accepted = is_storage_class(uid) && contexts.iter().any(|c| c.abstract_syntax == uid);
        let seen = items.iter().any(|i| matches!(i, UserVariableItem::ScuScpRoleSelectionSubItem(u, _) if u == uid));
        if accepted && !seen {
            items.push(UserVariableItem::ScuScpRoleSelectionSubItem(uid.to_owned(), *roles));
        }
    }
    items
}

/// The SOP classes for which an A-ASSOCIATE-AC makes the requestor an SCP (role selection
/// items with the SCP role accepted, PS3.7 §D.3.3.4).
pub fn requestor_scp_classes(ac: &AssociationAC) -> Vec<String> {
    ac.user_variables
        .iter()
        .filter_map(|i| match i {
            UserVariableItem::ScuScpRoleSelectionSubItem(uid, roles) if roles.scp => Some(uid.trim_end_matches(['\0', ' ']).to_owned()),
            _ => None,
        })
        .collect()
}

/// The rejection sent when the association cap is reached: transient, presentation-related
/// service provider, local limit exceeded (PS3.8 §9.3.4 Table 9-21).
pub fn over_capacity() -> AssociationRJ {
    AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            dicom_ul::pdu::AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_ul::pdu::PresentationContextProposed;

    fn rq(calling: &str, called: &str, contexts: Vec<(&str, Vec<&str>)>) -> AssociationRQ {
        AssociationRQ {
            protocol_version: 1,
            calling_ae_title: calling.into(),
            called_ae_title: called.into(),
            application_context_name: APPLICATION_CONTEXT.into(),
            presentation_contexts: contexts
                .into_iter()
                .enumerate()
                .map(|(i, (a, t))| PresentationContextProposed {
                    id: (2 * i + 1) as u8,
                    abstract_syntax: a.into(),
                    transfer_syntaxes: t.into_iter().map(String::from).collect(),
                })
                .collect(),
            user_variables: vec![UserVariableItem::MaxLength(16384)],
        }
    }

    fn policy(allow_any: bool) -> AcceptorPolicy {
        AcceptorPolicy {
            ae_title: "VNA".into(),
            allow_any_calling_ae: allow_any,
            known_calling_aes: vec!["MODALITY".into()],
            max_pdu_length: 65536,
        }
    }

    fn accepts(uid: &str) -> bool {
        uid == VERIFICATION || is_storage_class(uid)
    }

    #[test]
    fn storage_classes() {
        assert!(is_storage_class("1.2.840.10008.5.1.4.1.1.2"));
        assert!(is_storage_class("1.2.840.10008.5.1.4.1.1.77.1.6")); // whole slide microscopy
        assert!(is_storage_class("1.2.840.10008.5.1.4.1.1.77.1.1.1")); // video endoscopic
        assert!(!is_storage_class("1.2.840.10008.5.1.4.1.2.2.1")); // study root find
        assert!(!is_storage_class("1.2.840.10008.5.1.4.31")); // worklist
    }

    #[test]
    fn accepts_first_supported_syntax_and_rejects_unknown_classes() {
        let r = rq(
            "MODALITY",
            "VNA",
            vec![
                ("1.2.840.10008.5.1.4.1.1.2", vec!["1.2.3.4.unknown", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.1"]),
                ("1.2.840.10008.5.1.4.1.2.2.1", vec!["1.2.840.10008.1.2"]),
                ("1.2.840.10008.5.1.4.1.1.4", vec!["1.2.3.4.unknown"]),
            ],
        );
        let Decision::Accept { ac, contexts, peer_max_pdu, .. } = decide(&r, &policy(false), accepts) else { panic!("rejected") };
        assert_eq!(peer_max_pdu, 16384);
        assert_eq!(
            contexts,
            vec![PresentationContext {
                id: 1,
                abstract_syntax: "1.2.840.10008.5.1.4.1.1.2".into(),
                transfer_syntax: "1.2.840.10008.1.2.4.90".into()
            }]
        );
        let reasons: Vec<_> = ac.presentation_contexts.iter().map(|p| p.reason.clone()).collect();
        assert_eq!(
            reasons,
            vec![
                PresentationContextResultReason::Acceptance,
                PresentationContextResultReason::AbstractSyntaxNotSupported,
                PresentationContextResultReason::TransferSyntaxesNotSupported
            ]
        );
    }

    #[test]
    fn storage_scp_role_is_accepted_for_c_get() {
        use dicom_ul::pdu::RequestorRoles;
        let ct = "1.2.840.10008.5.1.4.1.1.2";
        let mut r =
            rq("MODALITY", "VNA", vec![("1.2.840.10008.5.1.4.1.2.2.3", vec!["1.2.840.10008.1.2"]), (ct, vec!["1.2.840.10008.1.2"])]);
        r.user_variables.push(UserVariableItem::ScuScpRoleSelectionSubItem(ct.into(), RequestorRoles { scu: false, scp: true }));
        // Not a storage class, and a class without a context: no item back (default roles).
        r.user_variables.push(UserVariableItem::ScuScpRoleSelectionSubItem(
            "1.2.840.10008.5.1.4.1.2.2.3".into(),
            RequestorRoles { scu: true, scp: true },
        ));
        r.user_variables.push(UserVariableItem::ScuScpRoleSelectionSubItem(
            "1.2.840.10008.5.1.4.1.1.4".into(),
            RequestorRoles { scu: false, scp: true },
        ));
        let Decision::Accept { ac, .. } = decide(&r, &policy(false), |_| true) else { panic!("rejected") };
        let roles: Vec<_> = ac.user_variables.iter().filter(|i| matches!(i, UserVariableItem::ScuScpRoleSelectionSubItem(..))).collect();
        assert_eq!(roles, vec![&UserVariableItem::ScuScpRoleSelectionSubItem(ct.into(), RequestorRoles { scu: false, scp: true })]);
        assert_eq!(requestor_scp_classes(&ac), vec![ct.to_owned()]);
    }

    #[test]
    fn an_asynchronous_window_is_answered_only_when_asked_and_capped() {
        let window_item = |ac: &AssociationAC| {
            ac.user_variables.iter().find_map(|i| match i {
                UserVariableItem::Unknown(ASYNC_WINDOW_ITEM, v) => Some(v.clone()),
                _ => None,
            })
        };
        let plain = rq("MODALITY", "VNA", vec![(VERIFICATION, vec!["1.2.840.10008.1.2"])]);
        let Decision::Accept { ac, window, .. } = decide(&plain, &policy(false), accepts) else { panic!("rejected") };
        assert_eq!((window, window_item(&ac)), (1, None));
        let cap = MAX_OPERATIONS_PERFORMED.to_be_bytes();
        for (invoked, expected) in [(8u16, 8u16), (1, 1), (0, MAX_OPERATIONS_PERFORMED), (1000, MAX_OPERATIONS_PERFORMED)] {
            let mut asked = plain.clone();
            let [hi, lo] = invoked.to_be_bytes();
            asked.user_variables.push(UserVariableItem::Unknown(ASYNC_WINDOW_ITEM, vec![hi, lo, 0, 1]));
            let Decision::Accept { ac, window, .. } = decide(&asked, &policy(false), accepts) else { panic!("rejected") };
            let [ehi, elo] = expected.to_be_bytes();
            // We invoke one at a time and perform `expected` at once.
            assert_eq!((window, window_item(&ac)), (expected, Some(vec![0, 1, ehi, elo])), "asked {invoked}, cap {cap:?}");
        }
    }

    #[test]
    fn ae_titles_are_checked() {
        let bad_called = rq("MODALITY", "OTHER", vec![(VERIFICATION, vec!["1.2.840.10008.1.2"])]);
        let Decision::Reject(rj) = decide(&bad_called, &policy(false), accepts) else { panic!("accepted") };
        assert_eq!(rj.source, AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::CalledAETitleNotRecognized));
        assert_eq!(rj.result, AssociationRJResult::Permanent);
        let unknown = rq("STRANGER", "VNA", vec![(VERIFICATION, vec!["1.2.840.10008.1.2"])]);
        let Decision::Reject(rj) = decide(&unknown, &policy(false), accepts) else { panic!("accepted") };
        assert_eq!(rj.source, AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::CallingAETitleNotRecognized));
        assert!(matches!(decide(&unknown, &policy(true), accepts), Decision::Accept { .. }));
    }
}
