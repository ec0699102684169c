//! PostgreSQL's wire protocol counts a statement's bind parameters in 16
//! bits: one statement takes at most 65 535. A multi-row insert is split
//! into statements of at most that many binds, so no batch, however large,
//! is refused for its size.

/// Bind parameters one statement may carry.
pub const MAX_BINDS: usize = u16::MAX as usize;

/// Rows of `binds_per_row` parameters each that fit one statement.
pub const fn rows_per_statement(binds_per_row: usize) -> usize {
    let rows = MAX_BINDS / binds_per_row;
    // A row wider than the limit cannot be split; it goes alone (and the
    // database refuses it), rather than never.
    if rows == 0 {
        1
    } else {
        rows
    }
}

/// `rows` in statement-sized pieces, in order.
pub fn statements<T>(rows: &[T], binds_per_row: usize) -> std::slice::Chunks<'_, T> {
    rows.chunks(rows_per_statement(binds_per_row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_holds_as_many_rows_as_fit_the_limit_and_no_more() {
        for binds in [1, 3, 4, 23, 24, 100, 65_535] {
            let rows = rows_per_statement(binds);
            assert!(rows * binds <= MAX_BINDS, "{binds} binds per row");
            assert!((rows + 1) * binds > MAX_BINDS, "{binds} binds per row");
        }
        assert_eq!(rows_per_statement(4), 16_383);
        assert_eq!(rows_per_statement(24), 2_730);
        assert_eq!(rows_per_statement(70_000), 1, "a too-wide row goes alone");
    }

    #[test]
    fn pieces_cover_every_row_once_in_order() {
        // 300 verdicts × 64 conversation turns × 4 binds = 76 800 binds.
        let turns: Vec<usize> = (0..300 * 64).collect();
        let pieces: Vec<&[usize]> = statements(&turns, 4).collect();
        assert_eq!(
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [16_383, 2_817]
        );
        assert!(pieces.iter().all(|p| p.len() * 4 <= MAX_BINDS));
        let joined: Vec<usize> = pieces.concat();
        assert_eq!(joined, turns);
        assert_eq!(
            statements(&turns[..0], 4).count(),
            0,
            "nothing: no statement"
        );
        assert_eq!(statements(&turns[..16_383], 4).count(), 1);
        assert_eq!(statements(&turns[..16_384], 4).count(), 2);
    }
}
