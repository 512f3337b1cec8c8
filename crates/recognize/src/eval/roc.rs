//! False-accept and false-reject rates over rejection thresholds, and the
//! threshold that meets a target false-accept rate: how the recognizers'
//! default thresholds are calibrated (`docs/recognition.md`).
//!
//! Inputs are nearest distances: of *impostor* faces (people absent from
//! training) and of *genuine* faces (people in training), the latter with
//! whether their nearest training sample is the right person. At a
//! threshold t a face is accepted when its distance is strictly below t
//! (the recognizers' rule), so:
//!
//! - FAR: the fraction of impostors accepted;
//! - FRR: the fraction of genuine faces rejected (distance >= t);
//! - misidentified: the fraction of genuine faces accepted as somebody
//!   else.
//!
//! Empty inputs give rates of 0, never a division by zero.

/// Nearest distance of a face whose person is in the training set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenuineScore {
    /// Distance to the nearest training sample.
    pub distance: f64,
    /// Whether that sample is of the face's own person.
    pub nearest_is_right: bool,
}

/// The rates at one threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RocPoint {
    /// The threshold (accepted: distance strictly below it).
    pub threshold: f64,
    /// False-accept rate: impostors accepted / impostors.
    pub far: f64,
    /// False-reject rate: genuine faces rejected / genuine faces.
    pub frr: f64,
    /// Genuine faces accepted as the wrong person / genuine faces.
    pub misidentified: f64,
}

/// Number of intervals of the curve of [`analyse`] (21 points).
pub const CURVE_STEPS: usize = 20;

/// The rates at `threshold`.
pub fn roc_point(threshold: f64, genuine: &[GenuineScore], impostor: &[f64]) -> RocPoint {
    let accepted_impostors = impostor.iter().filter(|&&d| d < threshold).count();
    let rejected = genuine.iter().filter(|g| g.distance >= threshold).count();
    let wrong = genuine
        .iter()
        .filter(|g| g.distance < threshold && !g.nearest_is_right)
        .count();
    let g = genuine.len().max(1) as f64;
    RocPoint {
        threshold,
        far: accepted_impostors as f64 / impostor.len().max(1) as f64,
        frr: rejected as f64 / g,
        misidentified: wrong as f64 / g,
    }
}

/// The largest threshold whose false-accept rate is at most `target` (in
/// 0..1): the impostor distance of rank floor(target * count) in
/// increasing order, so that exactly that many impostors are strictly
/// below it (fewer when distances tie); `f64::INFINITY` when that rank is
/// past the last impostor.
pub fn threshold_for_far(impostor: &[f64], target: f64) -> f64 {
    let mut sorted = impostor.to_vec();
    sorted.sort_by(f64::total_cmp);
    let allowed = (target * sorted.len() as f64).floor() as usize;
    sorted.get(allowed).copied().unwrap_or(f64::INFINITY)
}

/// The rates at `steps + 1` evenly spaced thresholds from the smallest to
/// the largest finite distance of either kind.
pub fn curve(genuine: &[GenuineScore], impostor: &[f64], steps: usize) -> Vec<RocPoint> {
    let finite: Vec<f64> = impostor
        .iter()
        .copied()
        .chain(genuine.iter().map(|g| g.distance))
        .filter(|d| d.is_finite())
        .collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (0..=steps)
        .map(|i| {
            let t = lo + (hi - lo) * i as f64 / steps as f64;
            roc_point(t, genuine, impostor)
        })
        .collect()
}

/// The outcome of an impostor analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct ImpostorAnalysis {
    /// The rates at the threshold for the target false-accept rate
    /// ([`threshold_for_far`]).
    pub suggested: RocPoint,
    /// The rates over the range of distances ([`curve`], [`CURVE_STEPS`]).
    pub curve: Vec<RocPoint>,
}

/// The curve and the suggested threshold for `target_far`.
pub fn analyse(genuine: &[GenuineScore], impostor: &[f64], target_far: f64) -> ImpostorAnalysis {
    let curve = curve(genuine, impostor, CURVE_STEPS);
    let t = threshold_for_far(impostor, target_far);
    ImpostorAnalysis {
        suggested: roc_point(t, genuine, impostor),
        curve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genuine(scores: &[(f64, bool)]) -> Vec<GenuineScore> {
        scores
            .iter()
            .map(|&(distance, nearest_is_right)| GenuineScore {
                distance,
                nearest_is_right,
            })
            .collect()
    }

    #[test]
    fn far_threshold_accepts_at_most_the_target() {
        let imp: Vec<f64> = (1..=100).map(f64::from).collect();
        let t = threshold_for_far(&imp, 0.01);
        assert_eq!(t, 2.0);
        assert_eq!(roc_point(t, &[], &imp).far, 0.01);
        // One impostor of one allowed 0.99 of a face: none may pass.
        assert_eq!(threshold_for_far(&[3.0], 0.99), 3.0);
        // A rank past the last impostor: every impostor may pass.
        assert_eq!(threshold_for_far(&[3.0], 1.0), f64::INFINITY);
        assert_eq!(threshold_for_far(&[], 0.5), f64::INFINITY);
    }

    #[test]
    fn rates_count_strictly_below_the_threshold_as_accepted() {
        let g = genuine(&[(1.0, true), (2.0, false), (3.0, true), (4.0, true)]);
        let imp = [2.5, 3.0, 10.0];
        let p = roc_point(3.0, &g, &imp);
        assert_eq!(p.far, 1.0 / 3.0);
        assert_eq!(p.frr, 0.5);
        assert_eq!(p.misidentified, 0.25);
        let empty = roc_point(1.0, &[], &[]);
        assert_eq!((empty.far, empty.frr, empty.misidentified), (0.0, 0.0, 0.0));
    }

    #[test]
    fn curve_spans_the_finite_distances() {
        let g = genuine(&[(f64::INFINITY, false), (2.0, true)]);
        let imp = [12.0, 7.0];
        let c = curve(&g, &imp, 4);
        let thresholds: Vec<f64> = c.iter().map(|p| p.threshold).collect();
        assert_eq!(thresholds, vec![2.0, 4.5, 7.0, 9.5, 12.0]);
        assert_eq!(c[0].frr, 1.0);
        assert_eq!(c[4].far, 0.5);
        let a = analyse(&g, &imp, 0.5);
        assert_eq!(a.curve.len(), CURVE_STEPS + 1);
        assert_eq!(a.suggested.threshold, 12.0);
        assert_eq!(a.suggested.far, 0.5);
    }
}
