//! The conversation cache: KV states of recent conversations saved to host
//! memory, keyed by the caller's image key, so that a follow-up question on
//! the same image restores the system prefix, the image and the turns it
//! shares with an earlier request instead of decoding them again.
//!
//! This part is pure bookkeeping (generic over the saved state, so it is
//! tested without llama.cpp): which entry serves a request best, and LRU
//! eviction within a byte budget. Entries hold the exact tokens their state
//! holds, so a hit is decided on tokens, never on text.

use std::sync::Arc;

use llama_cpp_2::token::LlamaToken;

/// One saved conversation state.
struct Entry<S> {
    key: String,
    /// The text tokens before the image (system prompt): a hit must match.
    prefix: Vec<LlamaToken>,
    /// KV positions of the prefix and the image together.
    n_prefix: usize,
    /// The text tokens after the image that the state holds, in order.
    post: Vec<LlamaToken>,
    state: Arc<S>,
    bytes: usize,
    /// Logical clock of the last use, for LRU eviction.
    used: u64,
}

/// A cached state chosen for a request.
pub(super) struct Hit<S> {
    pub state: Arc<S>,
    pub n_prefix: usize,
    /// Positions the state holds after the image (restored, then trimmed).
    pub cached_post: usize,
    /// Leading post-image tokens the request shares with the state: kept.
    pub common: usize,
}

/// What a new state is saved with.
pub(super) struct Saved<S> {
    pub key: String,
    pub prefix: Vec<LlamaToken>,
    pub n_prefix: usize,
    pub post: Vec<LlamaToken>,
    pub state: S,
    pub bytes: usize,
}

/// LRU over entries bounded by their total bytes. Entries are few (a state
/// is megabytes), so lists are scanned.
pub(super) struct ConversationCache<S> {
    entries: Vec<Entry<S>>,
    budget: usize,
    used_bytes: usize,
    clock: u64,
}

impl<S> ConversationCache<S> {
    pub fn new(budget: usize) -> Self {
        ConversationCache {
            entries: Vec::new(),
            budget,
            used_bytes: 0,
            clock: 0,
        }
    }

    /// Whether saving is worth anything (a zero budget keeps nothing).
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// KV positions of prefix and image of some entry for `key` with this
    /// text prefix: a request that will likely hit needs no vision tower.
    pub fn n_prefix(&self, key: &str, prefix: &[LlamaToken]) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| e.key == key && e.prefix == prefix)
            .map(|e| e.n_prefix)
    }

    /// The entry of `key` sharing the most post-image tokens with `post`,
    /// among those whose restore fits `max_positions`. At least one token
    /// of `post` is left to decode: its logits start the answer.
    pub fn best(
        &mut self,
        key: &str,
        prefix: &[LlamaToken],
        post: &[LlamaToken],
        max_positions: usize,
    ) -> Option<Hit<S>> {
        let limit = post.len().saturating_sub(1);
        let (i, common) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.key == key && e.prefix == prefix && e.n_prefix + e.post.len() <= max_positions
            })
            .map(|(i, e)| (i, common_prefix(&e.post, post).min(limit)))
            // Most tokens kept; among equals the smallest state to restore.
            .max_by(|(a, ca), (b, cb)| {
                ca.cmp(cb)
                    .then(self.entries[*b].bytes.cmp(&self.entries[*a].bytes))
            })?;
        self.clock += 1;
        let e = &mut self.entries[i];
        e.used = self.clock;
        Some(Hit {
            state: Arc::clone(&e.state),
            n_prefix: e.n_prefix,
            cached_post: e.post.len(),
            common,
        })
    }

    /// Whether an entry holds these tokens already (then saving them again
    /// would add nothing); counts as a use.
    pub fn covers(&mut self, key: &str, prefix: &[LlamaToken], post: &[LlamaToken]) -> bool {
        self.clock += 1;
        let clock = self.clock;
        match self
            .entries
            .iter_mut()
            .find(|e| e.key == key && e.prefix == prefix && e.post.starts_with(post))
        {
            Some(e) => {
                e.used = clock;
                true
            }
            None => false,
        }
    }

    /// Keeps a new state, evicting the least recently used ones to fit. An
    /// entry of the same key whose tokens start the new one's is dropped (the
    /// new one serves every request it would); a new state that starts an
    /// existing one is not kept (the existing one serves it). A state over the
    /// whole budget is not kept.
    pub fn insert(&mut self, saved: Saved<S>) {
        if saved.bytes > self.budget {
            return;
        }
        if self.covers(&saved.key, &saved.prefix, &saved.post) {
            return;
        }
        let clock = self.clock;
        let same = |e: &Entry<S>| e.key == saved.key && e.prefix == saved.prefix;
        let before = self.entries.len();
        self.entries
            .retain(|e| !(same(e) && saved.post.starts_with(&e.post)));
        if self.entries.len() != before {
            self.recount();
        }
        while self.used_bytes + saved.bytes > self.budget {
            let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].used) else {
                break;
            };
            let gone = self.entries.swap_remove(oldest);
            self.used_bytes -= gone.bytes;
        }
        self.used_bytes += saved.bytes;
        self.entries.push(Entry {
            key: saved.key,
            prefix: saved.prefix,
            n_prefix: saved.n_prefix,
            post: saved.post,
            state: Arc::new(saved.state),
            bytes: saved.bytes,
            used: clock,
        });
    }

    /// Forgets everything (the KV of another adapter means nothing now).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.used_bytes = 0;
    }

    fn recount(&mut self) {
        self.used_bytes = self.entries.iter().map(|e| e.bytes).sum();
    }

    #[cfg(test)]
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// The keys held, sorted.
    #[cfg(test)]
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.entries.iter().map(|e| e.key.as_str()).collect();
        keys.sort();
        keys
    }
}

/// Length of the longest common prefix of two token lists.
pub(super) fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    fn saved(key: &str, post: &[i32], bytes: usize) -> Saved<&'static str> {
        Saved {
            key: key.into(),
            prefix: toks(&[1, 2]),
            n_prefix: 10,
            post: toks(post),
            state: "state",
            bytes,
        }
    }

    #[test]
    fn the_entry_sharing_most_tokens_wins_and_one_token_is_left_to_decode() {
        let mut cache = ConversationCache::new(1000);
        cache.insert(saved("img", &[5, 6, 7], 10));
        cache.insert(saved("img", &[5, 8], 10));
        let hit = cache
            .best("img", &toks(&[1, 2]), &toks(&[5, 6, 7, 9]), 100)
            .unwrap();
        assert_eq!((hit.common, hit.cached_post, hit.n_prefix), (3, 3, 10));
        let hit = cache
            .best("img", &toks(&[1, 2]), &toks(&[5, 8, 9]), 100)
            .unwrap();
        assert_eq!((hit.common, hit.cached_post), (2, 2));
        // The whole request is cached: its last token is decoded again.
        let hit = cache
            .best("img", &toks(&[1, 2]), &toks(&[5, 6, 7]), 100)
            .unwrap();
        assert_eq!(hit.common, 2);
        // No question (screening): only prefix and image are kept.
        let hit = cache.best("img", &toks(&[1, 2]), &[], 100).unwrap();
        assert_eq!(hit.common, 0);
    }

    #[test]
    fn another_key_another_prefix_or_a_state_too_large_does_not_hit() {
        let mut cache = ConversationCache::new(1000);
        cache.insert(saved("img", &[5, 6], 10));
        assert!(cache
            .best("other", &toks(&[1, 2]), &toks(&[5]), 100)
            .is_none());
        assert!(cache
            .best("img", &toks(&[1, 3]), &toks(&[5]), 100)
            .is_none());
        assert!(
            cache.best("img", &toks(&[1, 2]), &toks(&[5]), 11).is_none(),
            "10 + 2 positions do not fit in 11"
        );
        assert!(cache.best("img", &toks(&[1, 2]), &toks(&[5]), 12).is_some());
        assert_eq!(cache.n_prefix("img", &toks(&[1, 2])), Some(10));
        assert_eq!(cache.n_prefix("img", &toks(&[9])), None);
    }

    #[test]
    fn a_longer_state_of_the_same_conversation_replaces_its_start() {
        let mut cache = ConversationCache::new(1000);
        cache.insert(saved("img", &[], 10));
        cache.insert(saved("img", &[5, 6], 20));
        assert_eq!(cache.keys(), ["img"], "the image-only state is dominated");
        assert_eq!(cache.used_bytes(), 20);
        cache.insert(saved("img", &[5], 15));
        assert_eq!(
            cache.used_bytes(),
            20,
            "a state the cache covers is not kept"
        );
        assert!(cache.covers("img", &toks(&[1, 2]), &toks(&[5])));
        assert!(cache.covers("img", &toks(&[1, 2]), &toks(&[5, 6])));
        assert!(!cache.covers("img", &toks(&[1, 2]), &toks(&[5, 6, 7])));
        assert!(!cache.covers("img", &toks(&[1, 3]), &toks(&[5])));
        cache.insert(saved("img", &[7], 15));
        assert_eq!(
            cache.keys(),
            ["img", "img"],
            "a diverging conversation is kept"
        );
        assert_eq!(cache.used_bytes(), 35);
    }

    #[test]
    fn least_recently_used_entries_are_evicted_within_the_budget() {
        let mut cache = ConversationCache::new(100);
        cache.insert(saved("a", &[], 40));
        cache.insert(saved("b", &[], 40));
        cache.insert(saved("c", &[], 40));
        assert_eq!(cache.keys(), ["b", "c"], "a third image evicts the first");
        assert_eq!(cache.used_bytes(), 80);
        // Using b makes c the oldest.
        assert!(cache.best("b", &toks(&[1, 2]), &[], 100).is_some());
        cache.insert(saved("d", &[], 40));
        assert_eq!(cache.keys(), ["b", "d"]);
        cache.insert(saved("e", &[], 90));
        assert_eq!(
            cache.keys(),
            ["e"],
            "a large state evicts as many as it needs"
        );
        assert_eq!(cache.used_bytes(), 90);
    }

    #[test]
    fn a_zero_budget_or_an_oversized_state_keeps_nothing() {
        let mut cache = ConversationCache::new(0);
        assert!(!cache.enabled());
        cache.insert(saved("a", &[], 1));
        assert!(cache.keys().is_empty());
        let mut cache = ConversationCache::new(50);
        cache.insert(saved("a", &[], 10));
        cache.insert(saved("b", &[], 51));
        assert_eq!(cache.keys(), ["a"], "too large: nothing evicted for it");
        cache.clear();
        assert!(cache.keys().is_empty());
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&toks(&[1, 2, 3]), &toks(&[1, 2, 4])), 2);
        assert_eq!(common_prefix(&toks(&[1]), &toks(&[1, 2])), 1);
        assert_eq!(common_prefix(&[], &toks(&[1])), 0);
    }
}
