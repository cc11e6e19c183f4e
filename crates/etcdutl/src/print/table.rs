//! The `-w table` layout of etcdctl (olekukonko/tablewriter as etcdctl
//! sets it up): `+---+` borders above and below the header and at the end,
//! header cells centred (the odd space on the right), data cells aligned
//! right, one space of padding inside each cell.

/// Renders `header` and `rows` as etcdctl's table, ending with a newline.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let border: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = border.clone();
    for (h, w) in header.iter().zip(&widths) {
        let gap = w - h.chars().count();
        let left = gap / 2;
        out += &format!("| {}{}{} ", " ".repeat(left), h, " ".repeat(gap - left));
    }
    out += "|\n";
    out += &border;
    for row in rows {
        for (cell, w) in row.iter().zip(&widths) {
            out += &format!("| {cell:>w$} ");
        }
        out += "|\n";
    }
    out += &border;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_etcdctls_member_table() {
        let rows = vec![vec![
            "2e1259d415f2a040".to_string(),
            "started".to_string(),
            "o".to_string(),
        ]];
        assert_eq!(
            render(&["ID", "STATUS", "NAME"], &rows),
            "+------------------+---------+------+\n\
             |        ID        | STATUS  | NAME |\n\
             +------------------+---------+------+\n\
             | 2e1259d415f2a040 | started |    o |\n\
             +------------------+---------+------+\n"
        );
    }
}
