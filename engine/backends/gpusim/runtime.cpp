// The GPU simulator's runtime (see runtime.h): fibers for GPU threads, barriers, shuffles, memory.
#include "engine/backends/gpusim/runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SEXTANT_GPUSIM_ASAN 1
#endif

namespace sextant::gpusim::rt {
namespace {

constexpr int kWarp = 32;
constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kMaxGridYZ = 65535;
constexpr size_t kMaxDynamicShared = 48 * 1024;
#if defined(SEXTANT_GPUSIM_ASAN)
constexpr size_t kStackBytes = 512 * 1024;  // sanitizer frames are larger
#else
constexpr size_t kStackBytes = 128 * 1024;
#endif

// ---- context switch -----------------------------------------------------------------------------

#if defined(__x86_64__)
// sextant_gpusim_switch(save, load): pushes the callee-saved registers and the SSE / x87 control
// words, stores the stack pointer in *save, loads `load` and pops that context's registers and
// control words. A new fiber's stack is laid out so that the pops and the `ret` enter FiberEntry
// as if it had been called.
extern "C" void sextant_gpusim_switch(void** save, void* load);
asm(R"(
  .text
  .p2align 4
  .globl sextant_gpusim_switch
  .type sextant_gpusim_switch, @function
sextant_gpusim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size sextant_gpusim_switch, .-sextant_gpusim_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
struct Context {
  void* sp = nullptr;
};
#else
struct Context {
  ucontext_t uc;
};
#endif

void FiberEntry();

enum class State { kReady, kWarpWait, kBlockWait, kDone };

struct Fiber {
  Context ctx;
  char* stack = nullptr;  // lowest usable byte
  dim3 idx;
  int warp = 0;
  int lane = 0;
  unsigned parity = 0;  // shuffle double-buffer index
  State state = State::kDone;
};

struct Launch {
  dim3 grid, block, block_idx;
  const std::function<void()>* body = nullptr;
  std::vector<Fiber> fibers;
  std::vector<float> shfl;  // [warp][parity][lane]
  std::vector<unsigned char> dynamic_shared;
  Context scheduler;
  int current = -1;
#if defined(SEXTANT_GPUSIM_ASAN)
  const void* sched_stack_bottom = nullptr;
  size_t sched_stack_size = 0;
#endif
};

std::mutex& LaunchMutex() {
  static std::mutex m;
  return m;
}
Launch* g_launch = nullptr;  // the running launch (guarded by LaunchMutex)
std::atomic<int> g_last_error{kSuccess};
std::mutex g_memory_mutex;
std::unordered_map<void*, size_t> g_allocations;  // guarded by g_memory_mutex
size_t g_allocated = 0;                           // guarded by g_memory_mutex

// One pool of fiber stacks, each with a guard page below it, reserved on first use (nullptr when
// the reservation fails).
char* StackPool() {
  static char* pool = []() -> char* {
    const size_t bytes = kMaxThreads * kStackBytes;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    for (unsigned i = 0; i < kMaxThreads; ++i)
      (void)mprotect(static_cast<char*>(p) + i * kStackBytes, page, PROT_NONE);
    return static_cast<char*>(p);
  }();
  return pool;
}

Fiber& Self() { return g_launch->fibers[static_cast<size_t>(g_launch->current)]; }

// Fiber -> scheduler.
void Yield(State s) {
  Fiber& f = Self();
  f.state = s;
#if defined(SEXTANT_GPUSIM_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, g_launch->sched_stack_bottom, g_launch->sched_stack_size);
#endif
#if defined(__x86_64__)
  sextant_gpusim_switch(&f.ctx.sp, g_launch->scheduler.sp);
#else
  swapcontext(&f.ctx.uc, &g_launch->scheduler.uc);
#endif
#if defined(SEXTANT_GPUSIM_ASAN)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

// Scheduler -> fiber i.
void Resume(Launch& l, int i) {
  l.current = i;
  Fiber& f = l.fibers[static_cast<size_t>(i)];
#if defined(SEXTANT_GPUSIM_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack, kStackBytes - 4096);
#endif
#if defined(__x86_64__)
  sextant_gpusim_switch(&l.scheduler.sp, f.ctx.sp);
#else
  swapcontext(&l.scheduler.uc, &f.ctx.uc);
#endif
#if defined(SEXTANT_GPUSIM_ASAN)
  __sanitizer_finish_switch_fiber(fake, &l.sched_stack_bottom, &l.sched_stack_size);
#endif
  l.current = -1;
}

void FiberEntry() {
#if defined(SEXTANT_GPUSIM_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &g_launch->sched_stack_bottom,
                                  &g_launch->sched_stack_size);
#endif
  (*g_launch->body)();
  Fiber& f = Self();
  f.state = State::kDone;
#if defined(SEXTANT_GPUSIM_ASAN)
  __sanitizer_start_switch_fiber(nullptr, g_launch->sched_stack_bottom, g_launch->sched_stack_size);
#endif
#if defined(__x86_64__)
  sextant_gpusim_switch(&f.ctx.sp, g_launch->scheduler.sp);
#else
  setcontext(&g_launch->scheduler.uc);
#endif
  std::abort();  // a finished fiber is never resumed
}

void InitFiber(Fiber& f, char* stack) {
  f.stack = stack + static_cast<size_t>(sysconf(_SC_PAGESIZE));
  f.parity = 0;
  f.state = State::kReady;
#if defined(__x86_64__)
  // From the top: a zero "return address" for FiberEntry, FiberEntry's address for `ret`, six
  // zeroed registers, then MXCSR and the x87 control word as the switch stores them.
  auto* top = reinterpret_cast<uint64_t*>(stack + kStackBytes);  // 16-byte aligned
  uint64_t* sp = top - 1;
  *sp = 0;
  *--sp = reinterpret_cast<uint64_t>(&FiberEntry);
  for (int i = 0; i < 6; ++i) *--sp = 0;
  --sp;
  uint32_t mxcsr = 0;
  uint16_t fpcw = 0;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fpcw));
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpcw, 2);
  f.ctx.sp = sp;
#else
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = f.stack;
  f.ctx.uc.uc_stack.ss_size = kStackBytes - static_cast<size_t>(sysconf(_SC_PAGESIZE));
  f.ctx.uc.uc_link = nullptr;
  makecontext(&f.ctx.uc, &FiberEntry, 0);
#endif
}

// Readies the waiters of every barrier that all its live participants have reached: a warp's
// shuffle when every live lane of the warp waits there, __syncthreads() when every live thread of
// the block does. False when nothing could be released (a deadlock).
bool ReleaseBarriers(Launch& l) {
  const int n = static_cast<int>(l.fibers.size());
  bool released = false;
  int live = 0, block_waiters = 0;
  for (int w = 0; w * kWarp < n; ++w) {
    const int end = std::min(n, (w + 1) * kWarp);
    int alive = 0, waiting = 0;
    for (int i = w * kWarp; i < end; ++i) {
      const State s = l.fibers[static_cast<size_t>(i)].state;
      alive += s != State::kDone;
      waiting += s == State::kWarpWait;
      block_waiters += s == State::kBlockWait;
    }
    live += alive;
    if (waiting > 0 && waiting == alive) {
      for (int i = w * kWarp; i < end; ++i) l.fibers[static_cast<size_t>(i)].state = State::kReady;
      released = true;
    }
  }
  if (live > 0 && block_waiters == live) {
    for (Fiber& f : l.fibers)
      if (f.state == State::kBlockWait) f.state = State::kReady;
    released = true;
  }
  return released;
}

// Runs one block to completion. False on a barrier deadlock.
bool RunBlock(Launch& l) {
  const int n = static_cast<int>(l.fibers.size());
  char* pool = StackPool();
  for (int i = 0; i < n; ++i) InitFiber(l.fibers[static_cast<size_t>(i)], pool + i * kStackBytes);
  // Shared memory starts as garbage on a GPU: NaN bytes here, so reading it unwritten shows.
  std::fill(l.dynamic_shared.begin(), l.dynamic_shared.end(), 0xFF);
  int live = n;
  for (;;) {
    for (int i = 0; i < n; ++i) {
      if (l.fibers[static_cast<size_t>(i)].state != State::kReady) continue;
      Resume(l, i);
      if (l.fibers[static_cast<size_t>(i)].state == State::kDone) --live;
    }
    if (live == 0) return true;
    if (!ReleaseBarriers(l)) return false;  // threads wait at barriers that cannot all be reached
  }
}

}  // namespace

const char* ErrorString(Error e) {
  switch (e) {
    case kSuccess:
      return "no error";
    case kErrorInvalidValue:
      return "invalid argument";
    case kErrorMemoryAllocation:
      return "out of memory";
    case kErrorInvalidConfiguration:
      return "invalid configuration argument";
    case kErrorInvalidDevice:
      return "invalid device ordinal";
    case kErrorLaunchFailure:
      return "unspecified launch failure (threads deadlocked at barriers)";
  }
  return "unknown error";
}

const dim3& ThreadIdx() { return Self().idx; }
const dim3& BlockIdx() { return g_launch->block_idx; }
const dim3& BlockDim() { return g_launch->block; }
const dim3& GridDim() { return g_launch->grid; }

void SyncThreads() { Yield(State::kBlockWait); }

float ShflXor(float v, int lane_mask) {
  Fiber& f = Self();
  float* slots = g_launch->shfl.data() + (static_cast<size_t>(f.warp) * 2 + f.parity) * kWarp;
  slots[f.lane] = v;
  Yield(State::kWarpWait);
  const float out = slots[(f.lane ^ lane_mask) & (kWarp - 1)];
  f.parity ^= 1u;
  return out;
}

float Shfl(float v, int src_lane) {
  Fiber& f = Self();
  float* slots = g_launch->shfl.data() + (static_cast<size_t>(f.warp) * 2 + f.parity) * kWarp;
  slots[f.lane] = v;
  Yield(State::kWarpWait);
  const float out = slots[src_lane & (kWarp - 1)];
  f.parity ^= 1u;
  return out;
}

void* DynamicShared() { return g_launch->dynamic_shared.data(); }

void LaunchKernel(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > kMaxGridYZ || grid.z > kMaxGridYZ || shared_bytes > kMaxDynamicShared) {
    g_last_error = kErrorInvalidConfiguration;
    return;
  }
  if (StackPool() == nullptr) {
    g_last_error = kErrorMemoryAllocation;
    return;
  }
  std::lock_guard<std::mutex> lock(LaunchMutex());
  Launch l;
  l.grid = grid;
  l.block = block;
  l.body = &body;
  l.fibers.resize(threads);
  for (unsigned i = 0; i < threads; ++i) {
    Fiber& f = l.fibers[i];
    f.idx = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
    f.warp = static_cast<int>(i) / kWarp;
    f.lane = static_cast<int>(i) % kWarp;
  }
  l.shfl.assign(((threads + kWarp - 1) / kWarp) * 2 * kWarp, 0.0f);
  l.dynamic_shared.assign(shared_bytes, 0);
  g_launch = &l;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        l.block_idx = dim3(x, y, z);
        if (!RunBlock(l)) {
          g_last_error = kErrorLaunchFailure;
          g_launch = nullptr;
          return;
        }
      }
  g_launch = nullptr;
}

std::atomic<uint64_t> g_graph_instantiations{0};
std::atomic<uint64_t> g_graph_launches{0};
void CountGraphInstantiation() { ++g_graph_instantiations; }
void CountGraphLaunch() { ++g_graph_launches; }
uint64_t GraphInstantiations() { return g_graph_instantiations.load(); }
uint64_t GraphLaunches() { return g_graph_launches.load(); }

Error GetLastError() { return static_cast<Error>(g_last_error.exchange(kSuccess)); }

Error Malloc(void** p, size_t bytes) {
  if (p == nullptr) return kErrorInvalidValue;
  const size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  std::lock_guard<std::mutex> lock(g_memory_mutex);
  if (rounded > kTotalMemory - g_allocated) return kErrorMemoryAllocation;
  void* mem = std::aligned_alloc(256, rounded);
  if (mem == nullptr) return kErrorMemoryAllocation;
  // Fresh device memory holds garbage on a GPU; all-ones bytes (NaN as floats) make a kernel that
  // reads memory nobody wrote produce NaNs instead of passing by luck.
  std::memset(mem, 0xFF, rounded);
  g_allocations[mem] = rounded;
  g_allocated += rounded;
  *p = mem;
  return kSuccess;
}

Error Free(void* p) {
  if (p == nullptr) return kSuccess;
  std::lock_guard<std::mutex> lock(g_memory_mutex);
  const auto it = g_allocations.find(p);
  if (it == g_allocations.end()) return kErrorInvalidValue;
  g_allocated -= it->second;
  g_allocations.erase(it);
  std::free(p);
  return kSuccess;
}

Error MemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(g_memory_mutex);
  if (free_bytes != nullptr) *free_bytes = kTotalMemory - g_allocated;
  if (total_bytes != nullptr) *total_bytes = kTotalMemory;
  return kSuccess;
}

}  // namespace sextant::gpusim::rt
