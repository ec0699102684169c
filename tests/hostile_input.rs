//! Hostile input through the pure parsers and image intake (issue 9): no
//! panic, every rejection a documented kind, no unbounded allocation. Needs
//! no services.

// The modules live in hostile_input/; the crate root resolves paths beside itself.
#[path = "hostile_input/craft.rs"]
mod craft;
#[path = "hostile_input/images.rs"]
mod images;
#[path = "hostile_input/json.rs"]
mod json;
#[path = "hostile_input/parsers.rs"]
mod parsers;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::OnceLock;

/// The system allocator, metered per thread: decoding runs on the calling
/// thread, so what one test's decode allocates is measured apart from the
/// tests running beside it.
struct Metered;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn grew(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + bytes as i64);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn shrank(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - bytes as i64));
}

// SAFETY: every call is forwarded to `System` unchanged; the meter only
// counts, in thread-locals without destructors, and never allocates.
unsafe impl GlobalAlloc for Metered {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static METERED: Metered = Metered;

/// Runs `work` and returns its result with the most bytes it held at once on
/// this thread (its result included).
pub fn peak_allocation<T>(work: impl FnOnce() -> T) -> (T, u64) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = work();
    let peak = PEAK.with(Cell::get);
    (out, (peak - start).max(0) as u64)
}

/// The dead-letter kinds docs/messages.md documents (the `dfa-error-kind` row).
pub fn documented_kinds() -> &'static [String] {
    static KINDS: OnceLock<Vec<String>> = OnceLock::new();
    KINDS.get_or_init(read_documented_kinds)
}

fn read_documented_kinds() -> Vec<String> {
    let doc = include_str!("../docs/messages.md");
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `dfa-error-kind`"))
        .expect("docs/messages.md documents dfa-error-kind");
    let cells: Vec<&str> = row.split('|').collect();
    let kinds: Vec<String> = cells[2]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(kinds.len() > 5, "dfa-error-kind row not parsed: {row}");
    kinds
}

/// Fails unless `kind` is both documented and one the caller allows here.
pub fn assert_documented(kind: &str, allowed: &[&str], what: &str) {
    assert!(
        documented_kinds().iter().any(|k| k == kind),
        "{what}: kind `{kind}` is not documented in docs/messages.md"
    );
    assert!(
        allowed.contains(&kind),
        "{what}: kind `{kind}` is not one of {allowed:?}"
    );
}
