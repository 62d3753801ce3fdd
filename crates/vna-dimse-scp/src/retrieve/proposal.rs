//! What a C-MOVE proposes to its destination: one presentation context per (SOP class,
//! transfer syntax) pair, never several syntaxes in one context. An acceptor takes at most one
//! transfer syntax per context (PS3.8 §9.3.2.2, PS3.7 §D.3.3.2) and most take an uncompressed
//! one they always support when offered a choice; with the stored syntax in a context of its
//! own, a peer that can take the object as stored gets it as stored (a JPEG slide stays the
//! archived JPEG), and the uncompressed fallbacks in further contexts serve the others.
//!
//! At most 128 contexts fit one association (odd context IDs 1-255, PS3.8 §9.3.2.2): past
//! that, the instances are shared among further sub-associations, each proposing only the
//! pairs its instances need.

use vna_dimse::ProposedContext;

/// PS3.8 §9.3.2.2: presentation context IDs are odd numbers 1-255.
pub(super) const MAX_CONTEXTS: usize = 128;

/// One sub-association of a move: the contexts it proposes and the instances it carries
/// (indexes into the resolved list, in their order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SubAssociation {
    pub contexts: Vec<(String, String)>,
    pub rows: Vec<usize>,
}

impl SubAssociation {
    /// The contexts to propose, one transfer syntax each.
    pub fn proposed(&self) -> Vec<ProposedContext> {
        self.contexts.iter().map(|(class, ts)| ProposedContext::new(class, &[ts.as_str()])).collect()
    }

    /// The pairs of `offer` this sub-association does not propose yet.
    fn missing<'a>(&self, class: &str, syntaxes: &'a [String]) -> Vec<&'a String> {
        syntaxes.iter().filter(|ts| !self.contexts.iter().any(|(c, t)| c == class && t == *ts)).collect()
    }
}

/// The sub-associations for instances given as (SOP class, deliverable syntaxes, preferred
/// first): each instance joins the first sub-association that proposes its pairs or still has
/// room for them (first fit, so a handful of classes never costs more than one association),
/// adding its missing pairs in its order of preference — the stored syntax first, then the
/// fallbacks.
pub(super) fn plan<'a>(offers: impl IntoIterator<Item = (&'a str, Vec<String>)>) -> Vec<SubAssociation> {
    let mut subs: Vec<SubAssociation> = Vec::new();
    for (i, (class, syntaxes)) in offers.into_iter().enumerate() {
        let fit = subs.iter().position(|s| s.contexts.len() + s.missing(class, &syntaxes).len() <= MAX_CONTEXTS);
        let sub = match fit {
            Some(k) => &mut subs[k],
            None => {
                subs.push(SubAssociation { contexts: Vec::new(), rows: Vec::new() });
                let last = subs.len() - 1;
                &mut subs[last]
            }
        };
        let added: Vec<(String, String)> = sub.missing(class, &syntaxes).into_iter().map(|ts| (class.to_owned(), ts.clone())).collect();
        // An instance offers at most three syntaxes: a new sub-association always has room.
        sub.contexts.extend(added);
        sub.rows.push(i);
    }
    subs
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
    const WSI: &str = "1.2.840.10008.5.1.4.1.1.77.1.6";
    const JPEG: &str = "1.2.840.10008.1.2.4.50";
    const J2K: &str = "1.2.840.10008.1.2.4.90";
    const EXPLICIT: &str = "1.2.840.10008.1.2.1";
    const IMPLICIT: &str = "1.2.840.10008.1.2";

    fn offer(class: &str, syntaxes: &[&str]) -> (String, Vec<String>) {
        (class.to_owned(), syntaxes.iter().map(|s| (*s).to_owned()).collect())
    }

    fn run(offers: &[(String, Vec<String>)]) -> Vec<SubAssociation> {
        plan(offers.iter().map(|(c, s)| (c.as_str(), s.clone())))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(c, t)| ((*c).to_owned(), (*t).to_owned())).collect()
    }

    #[test]
    fn one_context_per_syntax_stored_first() {
        let offers = [
            offer(WSI, &[JPEG, EXPLICIT, IMPLICIT]),
            offer(WSI, &[JPEG, EXPLICIT, IMPLICIT]),
            offer(CT, &[EXPLICIT, IMPLICIT]),
            offer(CT, &[J2K, EXPLICIT, IMPLICIT]),
            // An object the archive cannot decode: only as stored.
            offer(CT, &["1.2.840.10008.1.2.4.100"]),
        ];
        let subs = run(&offers);
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].rows, vec![0, 1, 2, 3, 4]);
        assert_eq!(
            subs[0].contexts,
            pairs(&[
                (WSI, JPEG),
                (WSI, EXPLICIT),
                (WSI, IMPLICIT),
                (CT, EXPLICIT),
                (CT, IMPLICIT),
                (CT, J2K),
                (CT, "1.2.840.10008.1.2.4.100"),
            ])
        );
        let proposed = subs[0].proposed();
        assert!(proposed.iter().all(|c| c.transfer_syntaxes.len() == 1), "{proposed:?}");
        assert_eq!((proposed[0].abstract_syntax.as_str(), proposed[0].transfer_syntaxes[0].as_str()), (WSI, JPEG));
    }

    #[test]
    fn more_pairs_than_contexts_go_to_further_sub_associations() {
        // 50 classes stored compressed: 3 pairs each, 150 in all.
        let classes: Vec<String> = (0..50).map(|i| format!("1.2.3.{i}")).collect();
        let mut offers: Vec<(String, Vec<String>)> = classes.iter().map(|c| offer(c, &[JPEG, EXPLICIT, IMPLICIT])).collect();
        // A second instance of the first class: already proposed by the first association.
        offers.push(offer(&classes[0], &[JPEG, EXPLICIT, IMPLICIT]));
        let subs = run(&offers);
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].contexts.len(), 126, "42 classes of 3 pairs fill the first");
        assert_eq!(subs[1].contexts.len(), 24);
        assert_eq!(subs[0].rows, (0..42).chain([50]).collect::<Vec<_>>());
        assert_eq!(subs[1].rows, (42..50).collect::<Vec<_>>());
        assert!(subs.iter().all(|s| s.contexts.len() <= MAX_CONTEXTS));
        // Every row lands exactly once; every pair a row needs is in its sub-association.
        let mut all: Vec<usize> = subs.iter().flat_map(|s| s.rows.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..offers.len()).collect::<Vec<_>>());
        for s in &subs {
            for &r in &s.rows {
                let (class, syntaxes) = &offers[r];
                assert!(syntaxes.iter().all(|ts| s.contexts.contains(&(class.clone(), ts.clone()))));
            }
        }
    }

    #[test]
    fn a_later_instance_fills_an_earlier_association_that_has_room() {
        // 127 pairs of one syntax each, then one needing 3: it opens a second association;
        // one more needing 1 still fits the first.
        let mut offers: Vec<(String, Vec<String>)> = (0..127).map(|i| offer(&format!("1.2.4.{i}"), &[EXPLICIT])).collect();
        offers.push(offer(CT, &[JPEG, EXPLICIT, IMPLICIT]));
        offers.push(offer("1.2.5", &[EXPLICIT]));
        let subs = run(&offers);
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].contexts.len(), 128);
        assert_eq!(subs[0].rows.last(), Some(&128));
        assert_eq!(subs[1].rows, vec![127]);
        assert_eq!(subs[1].contexts, pairs(&[(CT, JPEG), (CT, EXPLICIT), (CT, IMPLICIT)]));
    }

    #[test]
    fn nothing_to_move_proposes_nothing() {
        assert!(run(&[]).is_empty());
    }
}
