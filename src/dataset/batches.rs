//! Length-bucketed batches: rows sorted by length so that a batch carries
//! little padding, each batch as large as `fits` allows.

/// Row indices in batches: sorted by length (longest first, ties in row
/// order), consecutive rows grouped while `fits(rows, longest)` holds for the
/// batch (a row alone always makes a batch). Every row is in exactly one.
pub fn bucketed(lengths: &[usize], fits: impl Fn(usize, usize) -> bool) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        if !current.is_empty() && !fits(current.len() + 1, longest.max(lengths[i])) {
            out.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(lengths[i]);
        current.push(i);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// At most `tokens` padded tokens a batch.
pub fn within_tokens(tokens: usize) -> impl Fn(usize, usize) -> bool {
    move |rows, longest| rows * longest <= tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_once_within_the_budget() {
        let lengths = [5, 30, 7, 30, 12, 3, 9, 64, 2];
        let batches = bucketed(&lengths, |rows, longest| rows * longest <= 64 && rows <= 4);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(b.len() == 1 || b.len() * longest <= 64, "{b:?}");
            assert!(b.len() <= 4);
        }
        assert_eq!(batches[0], [7], "the longest alone fills a batch");
        assert_eq!(batches[1], [1, 3], "equal lengths in row order");
        assert_eq!(bucketed(&[], within_tokens(8)), Vec::<Vec<usize>>::new());
    }
}
