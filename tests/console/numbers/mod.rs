//! The numbers page: an analyst's charts over seeded verdicts (and no way
//! to ask or correct), the role checks, and the admins' registry forms
//! promoting and rolling back real adapters of the tiny model.

mod charts;
mod registry;
