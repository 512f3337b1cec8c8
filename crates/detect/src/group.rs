//! OpenCV's `groupRectangles`: merge overlapping raw detections into one
//! averaged box per cluster, keep clusters with more than `min_neighbors`
//! members, and drop clusters nested inside stronger ones.

use crate::Rect;

/// Whether two rectangles are "similar" with tolerance `eps`: every edge
/// within `eps * (min width + min height) / 2` of the other's.
pub fn similar(a: &Rect, b: &Rect, eps: f64) -> bool {
    let delta = eps * (a.width.min(b.width) + a.height.min(b.height)) as f64 * 0.5;
    let close = |u: i32, v: i32| ((u as i64 - v as i64).abs() as f64) <= delta;
    close(a.x, b.x)
        && close(a.y, b.y)
        && close(a.x + a.width, b.x + b.width)
        && close(a.y + a.height, b.y + b.height)
}

/// Labels the classes of the transitive closure of [`similar`]; classes
/// are numbered in order of their first member. Returns (labels, count).
pub fn partition(rects: &[Rect], eps: f64) -> (Vec<usize>, usize) {
    let n = rects.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            if similar(&rects[i], &rects[j], eps) {
                let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                if ri != rj {
                    parent[ri.max(rj)] = ri.min(rj);
                }
            }
        }
    }
    let mut class_of_root = vec![usize::MAX; n];
    let mut labels = Vec::with_capacity(n);
    let mut count = 0;
    for i in 0..n {
        let root = find(&mut parent, i);
        if class_of_root[root] == usize::MAX {
            class_of_root[root] = count;
            count += 1;
        }
        labels.push(class_of_root[root]);
    }
    (labels, count)
}

/// Groups raw detections as `groupRectangles(rects, min_neighbors, eps)`.
///
/// With `min_neighbors == 0` the input is returned unchanged. Otherwise each
/// class of similar rectangles is averaged (each coordinate
/// `round(sum * f32(1/n))` in f32), classes with `n <= min_neighbors` members
/// are dropped, and so is a class lying inside another kept class (within
/// 20 % of that class's size) when the other has more than `max(3, n)`
/// members or this one has fewer than 3.
pub fn group_rectangles(rects: &[Rect], min_neighbors: u32, eps: f64) -> Vec<Rect> {
    if min_neighbors == 0 || rects.is_empty() {
        return rects.to_vec();
    }
    let (labels, count) = partition(rects, eps);
    let mut sums = vec![[0i64; 4]; count];
    let mut members = vec![0u32; count];
    for (r, &c) in rects.iter().zip(&labels) {
        let s = &mut sums[c];
        s[0] += r.x as i64;
        s[1] += r.y as i64;
        s[2] += r.width as i64;
        s[3] += r.height as i64;
        members[c] += 1;
    }
    let averaged: Vec<Rect> = sums
        .iter()
        .zip(&members)
        .map(|(s, &n)| {
            let inv = 1.0f32 / n as f32;
            let avg = |v: i64| (v as f32 * inv).round_ties_even() as i32;
            Rect {
                x: avg(s[0]),
                y: avg(s[1]),
                width: avg(s[2]),
                height: avg(s[3]),
            }
        })
        .collect();

    let threshold = min_neighbors;
    let mut out = Vec::new();
    for (i, r1) in averaged.iter().enumerate() {
        let n1 = members[i];
        if n1 <= threshold {
            continue;
        }
        let nested = averaged.iter().enumerate().any(|(j, r2)| {
            let n2 = members[j];
            if j == i || n2 <= threshold {
                return false;
            }
            let dx = (r2.width as f64 * eps).round_ties_even() as i32;
            let dy = (r2.height as f64 * eps).round_ties_even() as i32;
            r1.x >= r2.x - dx
                && r1.y >= r2.y - dy
                && r1.x + r1.width <= r2.x + r2.width + dx
                && r1.y + r1.height <= r2.y + r2.height + dy
                && (n2 > n1.max(3) || n1 < 3)
        });
        if !nested {
            out.push(*r1);
        }
    }
    out
}

/// Intersects every rectangle with the image (0, 0, width, height) and drops
/// the empty ones.
pub fn clip_to_image(rects: &[Rect], width: u32, height: u32) -> Vec<Rect> {
    rects
        .iter()
        .filter_map(|r| {
            let x0 = r.x.max(0);
            let y0 = r.y.max(0);
            let x1 = (r.x + r.width).min(width as i32);
            let y1 = (r.y + r.height).min(height as i32);
            (x1 > x0 && y1 > y0).then_some(Rect {
                x: x0,
                y: y0,
                width: x1 - x0,
                height: y1 - y0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: i32, y: i32, w: i32, h: i32) -> Rect {
        Rect {
            x,
            y,
            width: w,
            height: h,
        }
    }

    #[test]
    fn similarity_uses_a_fifth_of_the_mean_smaller_side() {
        // delta = 0.2 * (20 + 20) / 2 = 4
        assert!(similar(&r(0, 0, 20, 20), &r(4, 4, 20, 20), 0.2));
        assert!(!similar(&r(0, 0, 20, 20), &r(5, 0, 20, 20), 0.2));
        assert!(!similar(&r(0, 0, 20, 20), &r(0, 0, 25, 20), 0.2));
    }

    #[test]
    fn clusters_are_averaged_and_thresholded() {
        let rects = vec![
            r(10, 10, 20, 20),
            r(11, 10, 20, 20),
            r(12, 11, 21, 21),
            r(100, 100, 20, 20), // a lone detection
        ];
        assert_eq!(group_rectangles(&rects, 0, 0.2), rects);
        // Average of x: (10+11+12)/3 = 11, y: 31/3 = 10.33 -> 10, w: 61/3 -> 20.
        assert_eq!(group_rectangles(&rects, 2, 0.2), vec![r(11, 10, 20, 20)]);
        assert!(group_rectangles(&rects, 3, 0.2).is_empty());
    }

    #[test]
    fn averaging_rounds_ties_to_even_in_f32() {
        // Two members: x sum 21 -> 10.5 -> 10; y sum 23 -> 11.5 -> 12.
        let rects = vec![r(10, 11, 20, 20), r(11, 12, 20, 20)];
        assert_eq!(group_rectangles(&rects, 1, 0.2), vec![r(10, 12, 20, 20)]);
    }

    #[test]
    fn transitive_chains_form_one_class() {
        // a~b and b~c but not a~c.
        let rects = vec![r(0, 0, 20, 20), r(4, 0, 20, 20), r(8, 0, 20, 20)];
        assert!(!similar(&rects[0], &rects[2], 0.2));
        let (labels, count) = partition(&rects, 0.2);
        assert_eq!((labels, count), (vec![0, 0, 0], 1));
    }

    #[test]
    fn nested_weaker_class_is_dropped() {
        let mut rects = Vec::new();
        // Big class with 5 members, small class inside it with 2.
        rects.extend(std::iter::repeat_n(r(0, 0, 100, 100), 5));
        rects.extend(std::iter::repeat_n(r(30, 30, 30, 30), 2));
        assert_eq!(group_rectangles(&rects, 1, 0.2), vec![r(0, 0, 100, 100)]);
        // With equal strength (4 and 4, both >= 3) both survive.
        let mut rects = Vec::new();
        rects.extend(std::iter::repeat_n(r(0, 0, 100, 100), 4));
        rects.extend(std::iter::repeat_n(r(30, 30, 30, 30), 4));
        assert_eq!(group_rectangles(&rects, 1, 0.2).len(), 2);
    }

    #[test]
    fn clipping_cuts_at_the_image_border() {
        let out = clip_to_image(
            &[r(300, 50, 30, 30), r(-5, -5, 10, 10), r(400, 0, 5, 5)],
            320,
            243,
        );
        assert_eq!(out, vec![r(300, 50, 20, 30), r(0, 0, 5, 5)]);
    }
}
