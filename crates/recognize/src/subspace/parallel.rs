//! How much parallelism the linear algebra may use.

use faer::Par;

/// faer parallelism that follows rayon's global pool, so that
/// `RAYON_NUM_THREADS=1` makes the whole crate single-threaded.
pub(crate) fn faer_par() -> Par {
    let threads = rayon::current_num_threads();
    if threads <= 1 {
        Par::Seq
    } else {
        Par::rayon(threads)
    }
}
