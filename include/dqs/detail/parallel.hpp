// OpenMP helpers: a scoped thread count and exception transport out of parallel loops. Without
// OpenMP everything runs on the calling thread.
#pragma once

#include "dqs/types.hpp"

#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dqs::detail {

// Sets the OpenMP thread count of parallel regions started by this thread, restoring it on exit.
// threads == 0 keeps the current setting.
class ThreadScope {
 public:
  explicit ThreadScope(int threads) {
#ifdef _OPENMP
    previous_ = omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
  }
  ~ThreadScope() {
#ifdef _OPENMP
    omp_set_num_threads(previous_);
#endif
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int previous_ = 1;
};

// Keeps the exception of the lowest failing index, so the error reported does not depend on
// thread timing.
class FirstError {
 public:
  void capture(Index index) {
    std::lock_guard lock(mutex_);
    if (!error_ || index < index_) {
      error_ = std::current_exception();
      index_ = index;
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
  Index index_ = 0;
};

// Whether a per-column loop over an n-column batch of dimension D is worth an OpenMP team: below ~32k
// coordinates the work (µs) is smaller than the cost of waking threads, which on a loaded machine can be
// milliseconds. Either way each column's arithmetic is the same, so results never depend on it.
inline bool worth_threads(Index dim, Index n) { return dim * n >= 32768; }

// Runs body(workspace, j) for j in [0, n), columns spread over the OpenMP team in static chunks;
// each thread gets its own default-constructed Workspace. Rethrows the first (lowest-j) exception.
// The region opens even for n = 1: inside it Eigen runs its GEMMs on the calling thread, while outside
// it Eigen would start its own OpenMP team for every product of a network evaluation (one per layer and
// reverse step), which oversubscribes a busy machine. parallel = false keeps the region but with one
// thread (an inactive region: a parallel region inside it, e.g. an energy's, may still start a team).
template <class Workspace, class Body>
void parallel_columns(Index n, Body&& body, bool parallel = true) {
  FirstError error;
#ifdef _OPENMP
#pragma omp parallel if (parallel)
#else
  (void)parallel;
#endif
  {
    Workspace workspace;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (Index j = 0; j < n; ++j) {
      try {
        body(workspace, j);
      } catch (...) {
        error.capture(j);
      }
    }
  }
  error.rethrow();
}

}  // namespace dqs::detail
