// Splits independent work over the machine's cores. Each index is computed by exactly one thread
// with the same arithmetic as a serial run, so results do not depend on the thread count.
//
// The threads are a persistent pool (started on first use, joined at exit): spawning threads on
// every call cost more than a 512^3 GEMM's worth of time per call. The caller runs part 0 itself.
// A parallel_for issued from inside a task, or while another thread holds the pool, runs serially
// on the calling thread (same results, no deadlock).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tpsim::numerics {

inline int worker_count() {
  static const int n = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  return n;
}

class WorkerPool {
 public:
  static WorkerPool& instance() {
    static WorkerPool pool(worker_count() - 1);
    return pool;
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  // task(part) for part in [0, parts), parts <= worker_count(); false (nothing ran) when the pool
  // is busy or the caller is itself a pool task: the caller then runs the parts serially.
  bool run(int parts, const std::function<void(int)>& task) {
    if (in_task() || parts - 1 > int(threads_.size())) return false;
    std::unique_lock<std::mutex> owner(owner_, std::try_to_lock);
    if (!owner.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      parts_ = parts;
      pending_ = parts - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    std::exception_ptr mine;
    in_task() = true;
    try {
      task(0);
    } catch (...) {
      mine = std::current_exception();
    }
    in_task() = false;
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    task_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { loop(i + 1); });
  }
  static bool& in_task() {
    thread_local bool inside = false;
    return inside;
  }
  void loop(int part) {
    in_task() = true;
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (part >= parts_) continue;
        task = task_;
      }
      std::exception_ptr error;
      try {
        (*task)(part);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (error && !error_) error_ = error;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex owner_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int parts_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

// fn(begin, end) over [0, n) in contiguous blocks whose boundaries are multiples of `align`;
// serial when `work` (a rough operation count) is too small to pay for waking threads.
template <class Fn>
void parallel_for(int64_t n, Fn fn, int64_t align = 1, double work = 1e9) {
  const int workers = work < 2e6 ? 1 : static_cast<int>(std::min<int64_t>(worker_count(), (n + align - 1) / align));
  if (workers <= 1) {
    if (n > 0) fn(int64_t(0), n);
    return;
  }
  const int64_t blocks = (n + align - 1) / align;
  const auto bounds = [&](int w) {
    return w == workers ? n : std::min(n, (blocks * w / workers) * align);
  };
  const std::function<void(int)> part = [&](int w) {
    const int64_t begin = bounds(w), end = bounds(w + 1);
    if (end > begin) fn(begin, end);
  };
  if (WorkerPool::instance().run(workers, part)) return;
  for (int w = 0; w < workers; ++w) part(w);
}

// fn(begin, end) over [0, n) in blocks of `chunk` (the last one shorter) handed out on demand:
// a thread slowed by another process takes fewer blocks instead of holding up the rest. Which
// thread runs a block never changes what it computes.
template <class Fn>
void parallel_chunks(int64_t n, Fn fn, int64_t chunk, double work = 1e9) {
  const int64_t blocks = (n + chunk - 1) / chunk;
  const int workers = work < 2e6 ? 1 : static_cast<int>(std::min<int64_t>(worker_count(), blocks));
  if (workers <= 1) {
    if (n > 0) fn(int64_t(0), n);
    return;
  }
  std::atomic<int64_t> next{0};
  const std::function<void(int)> part = [&](int) {
    for (int64_t b; (b = next.fetch_add(1)) < blocks;) fn(b * chunk, std::min(n, (b + 1) * chunk));
  };
  if (WorkerPool::instance().run(workers, part)) return;
  part(0);
}

}  // namespace tpsim::numerics
