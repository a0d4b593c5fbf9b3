use super::*;
use crate::ui::selection::{for_each_link, token_infos, visible_tokens, Links, SentenceFilter};

/// 2 layers × 2 heads over `[CLS] a… [SEP] b… [SEP]`, rows of random
/// weights that sum to one.
fn maps(seq: usize) -> (AttentionMaps, Vec<String>, Vec<u32>) {
    let mut state = 0x9e37_79b9_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as f32 / u32::MAX as f32
    };
    let mut data = Vec::new();
    for _ in 0..2 * 2 * seq {
        let row: Vec<f32> = (0..seq).map(|_| next().powi(6)).collect();
        let sum: f32 = row.iter().sum();
        data.extend(row.iter().map(|w| w / sum));
    }
    let half = seq / 2;
    let tokens: Vec<String> = (0..seq)
        .map(|i| match i {
            0 => "[CLS]".to_string(),
            i if i == half - 1 || i == seq - 1 => "[SEP]".to_string(),
            i => format!("t{i}"),
        })
        .collect();
    let types = (0..seq).map(|i| u32::from(i >= half)).collect();
    (AttentionMaps::new(2, 2, seq, data), tokens, types)
}

#[test]
fn the_fast_walk_finds_the_links_of_for_each_link() {
    let (maps, tokens, types) = maps(70);
    let infos = token_infos(&tokens, &types);
    let focuses = [
        None,
        Some(TokenFocus::Query(5)),
        Some(TokenFocus::Key(40)),
        Some(TokenFocus::Key(0)),
    ];
    for filter in SentenceFilter::ALL {
        for hide in [false, true] {
            let visible = visible_tokens(&infos, filter, hide);
            let runs = KeyRuns::new(&visible.keys);
            for renormalize in [false, true] {
                for focus in focuses {
                    for min_weight in [0.0, 0.02, 0.1] {
                        let which = Links {
                            layer: 1,
                            head: 0,
                            renormalize,
                            focus,
                            min_weight,
                        };
                        let mut expected = Vec::new();
                        for_each_link(&maps, &visible, which, |q, k, w| {
                            expected.push((q as u16, k as u16, w))
                        });
                        let rows =
                            HeadRows::new(&maps, (1, 0), &visible, &runs, renormalize, focus);
                        let mut got = Vec::new();
                        rows.walk(0..visible.queries.len(), 0..70, min_weight, &mut got);
                        let case = format!(
                            "{filter:?} hide {hide} renorm {renormalize} {focus:?} {min_weight}"
                        );
                        assert_eq!(got.len(), expected.len(), "{case}");
                        for (g, e) in got.iter().zip(&expected) {
                            assert_eq!((g.0, g.1), (e.0, e.1), "{case}");
                            assert!((g.2 - e.2).abs() < 1e-5, "{case}");
                        }
                        let max = expected.iter().fold(0.0f32, |m, l| m.max(l.2));
                        if min_weight == 0.0 {
                            assert!((rows.max() - max).abs() < 1e-5, "{case}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_walk_limited_to_rows_and_columns_finds_exactly_theirs() {
    let (maps, tokens, types) = maps(50);
    let visible = visible_tokens(&token_infos(&tokens, &types), SentenceFilter::All, true);
    let runs = KeyRuns::new(&visible.keys);
    let rows = HeadRows::new(&maps, (0, 1), &visible, &runs, true, None);
    let mut all = Vec::new();
    rows.walk(
        0..visible.queries.len(),
        0..visible.keys.len(),
        0.03,
        &mut all,
    );
    let mut part = Vec::new();
    rows.walk([3, 4, 5].into_iter(), 10..20, 0.03, &mut part);
    let expected: Vec<Link> = all
        .into_iter()
        .filter(|l| (3..=5).contains(&l.0) && (10..20).contains(&l.1))
        .collect();
    assert_eq!(part, expected);
}

#[test]
fn heads_are_capped_to_their_strongest_links_and_drawn_by_contrast() {
    let mut links = vec![(0, 0, 0.1), (0, 1, 0.5), (1, 0, 0.05), (1, 1, 0.3)];
    let per_head = Contrast {
        per_head: true,
        gamma: 1.0,
    };
    assert!(shown(&mut links, per_head, 0.5, 2));
    links.sort_by(|a, b| a.2.total_cmp(&b.2));
    assert_eq!(links.len(), 2);
    assert_eq!((links[0].0, links[0].1), (1, 1));
    assert!((links[0].2 - 0.6).abs() < 1e-6 && (links[1].2 - 1.0).abs() < 1e-6);

    // A head spreading its weight thinly: nothing reaches 10% opacity as
    // it is, every link of a row does relative to the head's largest.
    let seq = 40;
    let maps = AttentionMaps::new(1, 1, seq, vec![1.0 / seq as f32; seq * seq]);
    let tokens: Vec<String> = (0..seq).map(|i| format!("t{i}")).collect();
    let visible = visible_tokens(
        &token_infos(&tokens, &vec![0; seq]),
        SentenceFilter::All,
        false,
    );
    let runs = KeyRuns::new(&visible.keys);
    let rows = HeadRows::new(&maps, (0, 0), &visible, &runs, false, None);
    let (raw, _) = head_lines(&rows, Contrast::default(), 0.1, 10_000);
    assert!(raw.is_empty());
    let (relative, capped) = head_lines(&rows, per_head, 0.1, 10_000);
    assert_eq!(relative.len(), seq * seq);
    assert!(!capped && relative.iter().all(|l| (l.2 - 1.0).abs() < 1e-5));
    let (few, capped) = head_lines(&rows, per_head, 0.1, 100);
    assert!(capped && few.len() == 100);
}

#[test]
fn runs_follow_the_visible_keys() {
    let runs = KeyRuns::new(&[1, 2, 3, 5, 6, 9]);
    let all: Vec<Run> = runs.within(0..6).collect();
    assert_eq!(
        all,
        vec![
            Run {
                pos: 1,
                ki: 0,
                len: 3
            },
            Run {
                pos: 5,
                ki: 3,
                len: 2
            },
            Run {
                pos: 9,
                ki: 5,
                len: 1
            },
        ]
    );
    let cut: Vec<Run> = runs.within(2..4).collect();
    assert_eq!(
        cut,
        vec![
            Run {
                pos: 3,
                ki: 2,
                len: 1
            },
            Run {
                pos: 5,
                ki: 3,
                len: 1
            }
        ]
    );
    assert!((lane_sum(&[1.0; 19]) - 19.0).abs() < 1e-6);
    assert_eq!(
        lane_max(&[0.1, 0.7, 0.2, 0.0, 0.3, 0.1, 0.1, 0.1, 0.9]),
        0.9
    );
}
