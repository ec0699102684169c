//! What analysts ask of stored verdicts: the filters of a verdict list or
//! export, the position of a page (`Keyset`, an opaque cursor), and the
//! buckets and figures of statistics. Pure: the API parses these from query
//! strings, the store turns them into parameterised SQL.

mod agreement;
mod buckets;
mod keyset;
mod queue;

pub use agreement::Agreement;
pub use buckets::{Bucket, TooManyBuckets, MAX_BUCKETS};
pub use keyset::{BadCursor, Keyset};
pub use queue::{Flagging, QueueClass, QueueKey};

use chrono::{DateTime, Utc};

use super::{ForgeryType, Label, VerdictStatus};

/// Bins of the p_fake histogram: `[i/10, (i+1)/10)`, the last one closed.
pub const P_FAKE_BINS: u32 = 10;

/// Which stored verdicts a list, an export or the statistics cover. Every
/// field narrows; none set is every verdict the caller may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerdictFilter {
    /// `created_at >= since`
    pub since: Option<DateTime<Utc>>,
    /// `created_at < until`
    pub until: Option<DateTime<Utc>>,
    pub label: Option<Label>,
    pub forgery_type: Option<ForgeryType>,
    /// `analysed` or `no_face` (no face found: no label, no p_fake).
    pub status: Option<VerdictStatus>,
    pub tenant: Option<String>,
    /// `p_fake >= min_p_fake` (a `no_face` verdict has none: never matches)
    pub min_p_fake: Option<f32>,
    /// `p_fake <= max_p_fake`
    pub max_p_fake: Option<f32>,
    /// The adapter that made the verdict (its registry id).
    pub adapter: Option<String>,
    /// Whether any reviewer has corrected it.
    pub corrected: Option<bool>,
    /// Whether any reviewer's correction contradicts it (see `contradicts`).
    pub disagreement: Option<bool>,
}

impl VerdictFilter {
    /// The filter as seen by a caller restricted to `own` tenant (None: all
    /// tenants). A tenant caller always gets its own tenant: its `tenant`
    /// filter narrows, never widens. None when asking for another tenant,
    /// which matches nothing (and says nothing about that tenant).
    pub fn within(mut self, own: Option<&str>) -> Option<VerdictFilter> {
        match (own, self.tenant.as_deref()) {
            (None, _) => Some(self),
            (Some(own), Some(asked)) if asked != own => None,
            (Some(own), _) => {
                self.tenant = Some(own.to_string());
                Some(self)
            }
        }
    }
}

/// Whether a correction contradicts a verdict: another label, or, both
/// saying fake, another forgery type named by the correction (one without a
/// type leaves the verdict's type standing). A `no_face` verdict (no label)
/// claimed nothing and is contradicted by nothing. The SQL of the store
/// says the same (the views of migration 0005 predate `no_face`).
pub fn contradicts(
    verdict: (Option<Label>, Option<ForgeryType>),
    correction: (Label, Option<ForgeryType>),
) -> bool {
    verdict.0.is_some_and(|label| {
        label != correction.0 || correction.1.is_some_and(|t| verdict.1 != Some(t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_caller_sees_only_its_own_tenant() {
        let asking = |t: Option<&str>| VerdictFilter {
            tenant: t.map(str::to_string),
            ..VerdictFilter::default()
        };
        assert_eq!(asking(None).within(None), Some(asking(None)));
        assert_eq!(asking(Some("b")).within(None), Some(asking(Some("b"))));
        assert_eq!(asking(None).within(Some("a")), Some(asking(Some("a"))));
        assert_eq!(asking(Some("a")).within(Some("a")), Some(asking(Some("a"))));
        assert_eq!(asking(Some("b")).within(Some("a")), None);
    }

    #[test]
    fn another_label_or_named_type_contradicts() {
        use ForgeryType::*;
        use Label::*;
        assert!(contradicts((Some(Fake), Some(FaceSwap)), (Real, None)));
        assert!(contradicts((Some(Real), None), (Fake, None)));
        assert!(contradicts(
            (Some(Fake), Some(FaceSwap)),
            (Fake, Some(FaceEditing))
        ));
        assert!(contradicts((Some(Fake), None), (Fake, Some(FaceEditing))));
        assert!(!contradicts(
            (Some(Fake), Some(FaceSwap)),
            (Fake, Some(FaceSwap))
        ));
        assert!(!contradicts((Some(Fake), Some(FaceSwap)), (Fake, None)));
        assert!(!contradicts((Some(Real), None), (Real, None)));
        // No face found: nothing to contradict, whatever the reviewer says.
        assert!(!contradicts((None, None), (Fake, Some(FaceEditing))));
        assert!(!contradicts((None, None), (Real, None)));
    }
}
