// Runtime of the host emulation: fiber scheduler, barriers, warp collectives, shared-memory
// shadow, allocation registry and the fp16/bf16 conversions. See cuda_emu.h for the model.
#include "cuda_emu.h"

#include <cstdarg>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

namespace emu {
namespace {

constexpr size_t kStackBytes = 96 * 1024;
constexpr size_t kMaxSharedBytes = 227 * 1024;  // sm_90's opt-in limit per block

enum class State { Run, Sync, Warp, Done };

struct Fiber {
    uint3 idx{};
    unsigned lin = 0;
    ucontext_t ctx{};
    State state = State::Run;
    WarpKind kind = WarpKind::Sync;
    uint32_t mask = 0;
    uint64_t value = 0;
    int arg = 0;
    int width = 32;
    uint64_t result = 0;
};

struct Region {
    std::vector<unsigned char> bytes;
    std::vector<Shadow> shadow;
};

struct Block {
    uint3 idx{}, dim{}, grid{};
    size_t dyn_bytes = 0;
    KernelFn fn = nullptr;
    void* closure = nullptr;
    std::vector<Fiber> fibers;
    std::vector<std::unique_ptr<unsigned char[]>> stacks;
    Fiber* cur = nullptr;
    ucontext_t sched{};
    uint32_t epoch = 0;
    std::map<const void*, Region> statics;
    Region dynamic;
    size_t static_bytes = 0;
    std::string error;
    // Reads of never-written shared bytes in the current epoch; an error unless another
    // thread's write in the same epoch already reported the race.
    struct PendingRead {
        Shadow* sh;
        const char* name;
        size_t index;
    };
    std::vector<PendingRead> pending;
};

thread_local Block* tl_block = nullptr;
thread_local std::string tl_outside_error;  // errors raised outside a launch (argument setup)

std::mutex g_alloc_mutex;
std::map<uintptr_t, size_t> g_allocs;

Block& blk() {
    if (!tl_block) {
        std::fprintf(stderr, "hipl emu: CUDA built-in used outside a kernel launch\n");
        std::abort();
    }
    return *tl_block;
}

void fiber_main() {
    Block& b = blk();
    b.fn(b.closure);
    b.cur->state = State::Done;
    swapcontext(&b.cur->ctx, &b.sched);
}

// Parks the current fiber and returns to the scheduler.
void park(State s) {
    Block& b = blk();
    b.cur->state = s;
    swapcontext(&b.cur->ctx, &b.sched);
}

void init_region(Region& r, size_t bytes) {
    // Fresh shared memory holds garbage on hardware; 0xff bytes read as NaN or -1.
    r.bytes.assign(bytes, 0xff);
    r.shadow.assign(bytes, Shadow{});
}

bool resolve_warp(Block& b, unsigned warp) {
    unsigned first = warp * 32, last = std::min<unsigned>(first + 32, b.fibers.size());
    Fiber* lead = nullptr;
    for (unsigned t = first; t < last; ++t)
        if (b.fibers[t].state == State::Warp) {
            lead = &b.fibers[t];
            break;
        }
    if (!lead) return false;
    uint32_t mask = lead->mask;
    for (unsigned l = 0; l < 32; ++l) {
        if (!(mask >> l & 1)) continue;
        unsigned t = first + l;
        if (t >= last) {
            fail("warp collective mask 0x%08x names lane %u, which does not exist", mask, l);
            return false;
        }
        Fiber& f = b.fibers[t];
        if (f.state == State::Done) {
            fail("warp collective mask 0x%08x names lane %u, which has exited", mask, l);
            return false;
        }
        if (f.state != State::Warp) return false;  // not arrived yet
        if (f.kind != lead->kind || f.mask != mask) {
            fail("warp %u: lanes disagree on the collective (kinds %d/%d, masks 0x%08x/0x%08x)",
                 warp, int(f.kind), int(lead->kind), f.mask, mask);
            return false;
        }
    }
    uint32_t ballot = 0;
    for (unsigned l = 0; l < 32; ++l)
        if (mask >> l & 1 && b.fibers[first + l].value) ballot |= 1u << l;
    for (unsigned l = 0; l < 32; ++l) {
        if (!(mask >> l & 1)) continue;
        Fiber& f = b.fibers[first + l];
        int w = f.width, seg = int(l) / w * w;
        int src = int(l);
        switch (f.kind) {
            case WarpKind::Sync: f.result = 0; break;
            case WarpKind::Ballot: f.result = ballot; break;
            case WarpKind::Any: f.result = ballot != 0; break;
            case WarpKind::All: f.result = ballot == mask; break;
            case WarpKind::ShflIdx: src = seg + (f.arg % w + w) % w; break;
            case WarpKind::ShflXor: src = seg + ((int(l) - seg) ^ f.arg) % w; break;
            case WarpKind::ShflDown: src = int(l) - seg + f.arg < w ? int(l) + f.arg : int(l); break;
            case WarpKind::ShflUp: src = int(l) - seg >= f.arg ? int(l) - f.arg : int(l); break;
        }
        if (f.kind >= WarpKind::ShflIdx && f.kind <= WarpKind::ShflUp) {
            if (!(mask >> src & 1)) {
                fail("shuffle in warp %u: lane %u reads lane %d, outside mask 0x%08x", warp, l,
                     src, mask);
                return false;
            }
            f.result = b.fibers[first + unsigned(src)].value;
        }
    }
    for (unsigned l = 0; l < 32; ++l)
        if (mask >> l & 1) b.fibers[first + l].state = State::Run;
    return true;
}

// Fails on a pending read of shared memory that is still unwritten at the end of an epoch.
bool check_pending(Block& b) {
    for (auto& p : b.pending)
        if (p.sh->w_epoch == UINT32_MAX) {
            b.cur = nullptr;
            fail("read of uninitialised shared memory `%s`[%zu]", p.name, p.index);
            return false;
        }
    b.pending.clear();
    return true;
}

// Runs one block to completion; returns false on an error.
bool run_block(Block& b) {
    unsigned n = b.dim.x * b.dim.y * b.dim.z;
    for (unsigned t = 0; t < n; ++t) {
        Fiber& f = b.fibers[t];
        f = Fiber{};
        f.lin = t;
        f.idx = {t % b.dim.x, t / b.dim.x % b.dim.y, t / (b.dim.x * b.dim.y)};
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = b.stacks[t].get();
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_main, 0);
    }
    b.epoch = 0;
    b.pending.clear();
    for (auto& [key, r] : b.statics) init_region(r, r.bytes.size());
    init_region(b.dynamic, b.dyn_bytes);

    for (;;) {
        for (auto& f : b.fibers) {
            if (f.state != State::Run) continue;
            b.cur = &f;
            swapcontext(&b.sched, &f.ctx);
            b.cur = nullptr;
            if (!b.error.empty()) return false;
        }
        unsigned done = 0, sync = 0;
        for (auto& f : b.fibers) {
            done += f.state == State::Done;
            sync += f.state == State::Sync;
        }
        if (done == n) return check_pending(b);

        bool released = false;
        for (unsigned w = 0; w * 32 < n; ++w) released |= resolve_warp(b, w);
        if (!b.error.empty()) return false;
        if (released) continue;

        if (sync + done == n) {
            if (done > 0) {
                fail("__syncthreads reached by %u threads while %u have exited (divergent barrier)",
                     sync, done);
                return false;
            }
            if (!check_pending(b)) return false;
            ++b.epoch;
            for (auto& f : b.fibers) f.state = State::Run;
            continue;
        }
        fail("deadlock: %u threads wait at __syncthreads, %u at warp collectives that cannot "
             "complete",
             sync, n - sync - done);
        return false;
    }
}

}  // namespace

void fail(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!tl_block) {
        if (tl_outside_error.empty()) tl_outside_error = buf;
        return;
    }
    Block& b = *tl_block;
    if (!b.error.empty()) return;
    char where[160] = "";
    if (b.cur)
        std::snprintf(where, sizeof where, " [block (%u,%u,%u) thread (%u,%u,%u)]", b.idx.x,
                      b.idx.y, b.idx.z, b.cur->idx.x, b.cur->idx.y, b.cur->idx.z);
    b.error = std::string(buf) + where;
}

bool failed() { return tl_block ? !tl_block->error.empty() : !tl_outside_error.empty(); }

bool find_alloc(const void* p, const unsigned char** base, size_t* bytes) {
    std::lock_guard<std::mutex> g(g_alloc_mutex);
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return false;
    --it;
    if (a > it->first + it->second) return false;
    *base = reinterpret_cast<const unsigned char*>(it->first);
    *bytes = it->second;
    return true;
}

void shared_read(Shadow* sh, size_t bytes, const char* name, size_t index) {
    Block& b = blk();
    int me = int(b.cur->lin);
    for (size_t i = 0; i < bytes; ++i) {
        Shadow& s = sh[i];
        if (s.w_epoch == UINT32_MAX) b.pending.push_back({&s, name, index});
        if (s.w_epoch == b.epoch && s.writer != me) {
            fail("shared-memory race on `%s`[%zu]: thread %d reads what thread %d wrote with no "
                 "__syncthreads between",
                 name, index, me, s.writer);
            return;
        }
        if (s.r_epoch != b.epoch) {
            s.r_epoch = b.epoch;
            s.reader = me;
        } else if (s.reader != me) {
            s.reader = -2;
        }
    }
}

void shared_write(Shadow* sh, size_t bytes, const char* name, size_t index) {
    Block& b = blk();
    int me = int(b.cur->lin);
    for (size_t i = 0; i < bytes; ++i) {
        Shadow& s = sh[i];
        if (s.w_epoch == b.epoch && s.w_epoch != UINT32_MAX && s.writer != me) {
            fail("shared-memory race on `%s`[%zu]: threads %d and %d write with no "
                 "__syncthreads between",
                 name, index, s.writer, me);
            return;
        }
        if (s.r_epoch == b.epoch && s.reader != me) {
            fail("shared-memory race on `%s`[%zu]: thread %d overwrites what thread %d read "
                 "with no __syncthreads between",
                 name, index, me, s.reader);
            return;
        }
        s.w_epoch = b.epoch;
        s.writer = me;
    }
}

SArr<unsigned char> static_shared_bytes(const void* key, size_t bytes, const char* name) {
    Block& b = blk();
    auto it = b.statics.find(key);
    if (it == b.statics.end()) {
        b.static_bytes += bytes;
        if (b.static_bytes + b.dyn_bytes > kMaxSharedBytes)
            fail("shared memory of %zu bytes exceeds the %zu-byte limit",
                 b.static_bytes + b.dyn_bytes, kMaxSharedBytes);
        it = b.statics.emplace(key, Region{}).first;
        init_region(it->second, bytes);
    }
    Region& r = it->second;
    return SArr<unsigned char>{r.bytes.data(), r.shadow.data(), r.bytes.size(), name};
}

SArr<unsigned char> dynamic_shared_bytes(const char* name) {
    Block& b = blk();
    return SArr<unsigned char>{b.dynamic.bytes.data(), b.dynamic.shadow.data(),
                               b.dynamic.bytes.size(), name};
}

uint3& thread_idx() { return blk().cur->idx; }
uint3& block_idx() { return blk().idx; }
uint3& block_dim() { return blk().dim; }
uint3& grid_dim() { return blk().grid; }
unsigned lane_id() { return blk().cur->lin % 32; }

void syncthreads() { park(State::Sync); }

uint64_t warp_collective(WarpKind kind, uint32_t mask, uint64_t value, int arg, int width) {
    Block& b = blk();
    Fiber& f = *b.cur;
    if (!(mask >> (f.lin % 32) & 1)) {
        fail("warp collective called by lane %u outside its mask 0x%08x", f.lin % 32, mask);
        return 0;
    }
    if (width <= 0 || width > 32 || (width & (width - 1))) {
        fail("shuffle width %d is not a power of two in 1..=32", width);
        return 0;
    }
    f.kind = kind;
    f.mask = mask;
    f.value = value;
    f.arg = arg;
    f.width = width;
    park(State::Warp);
    return f.result;
}

int run_kernel(dim3 grid, dim3 block, size_t dyn_smem, KernelFn fn, void* closure, char* err,
               size_t err_len) {
    auto report = [&](const std::string& msg) {
        if (err && err_len) std::snprintf(err, err_len, "%s", msg.c_str());
        return 1;
    };
    if (!tl_outside_error.empty()) {
        std::string m = tl_outside_error;
        tl_outside_error.clear();
        return report(m);
    }
    unsigned n = block.x * block.y * block.z;
    if (n == 0 || n > 1024) return report("block of " + std::to_string(n) + " threads");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
        return report("grid dimensions out of range");
    if (dyn_smem > kMaxSharedBytes) return report("dynamic shared memory over the limit");
    if (tl_block) return report("nested launch");

    Block b;
    b.dim = {block.x, block.y, block.z};
    b.grid = {grid.x, grid.y, grid.z};
    b.dyn_bytes = dyn_smem;
    b.fn = fn;
    b.closure = closure;
    b.fibers.resize(n);
    for (unsigned t = 0; t < n; ++t) b.stacks.emplace_back(new unsigned char[kStackBytes]);
    tl_block = &b;
    bool ok = true;
    for (unsigned z = 0; z < grid.z && ok; ++z)
        for (unsigned y = 0; y < grid.y && ok; ++y)
            for (unsigned x = 0; x < grid.x && ok; ++x) {
                b.idx = {x, y, z};
                ok = run_block(b);
            }
    tl_block = nullptr;
    return ok ? 0 : report(b.error);
}

float __half2float_impl(uint16_t h) {
    uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: renormalise
            int e = -1;
            do {
                ++e;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    return __uint_as_float(bits);
}

}  // namespace emu

float __half2float(__half h) { return emu::__half2float_impl(h.bits); }

__half __float2half(float f) {
    uint32_t x = __float_as_uint(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return {uint16_t(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0))};
    if (ax >= 0x477ff000u) return {uint16_t(sign | 0x7c00)};  // rounds to infinity
    if (ax < 0x38800000u) {                                    // subnormal or zero in half
        float a = __uint_as_float(ax);
        // Scaling by 2^24 moves the half subnormal grid to integers; rint rounds to even.
        uint32_t m = uint32_t(std::nearbyint(a * 16777216.0f));
        return {uint16_t(sign | m)};
    }
    uint32_t e = (ax >> 23) - 127 + 15, man = ax & 0x7fffff;
    uint32_t h = e << 10 | man >> 13;
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
    return {uint16_t(sign | h)};
}

__nv_bfloat16 __float2bfloat16(float f) {
    uint32_t x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return {uint16_t((x >> 16) | 0x40)};
    x += 0x7fff + ((x >> 16) & 1);
    return {uint16_t(x >> 16)};
}

// ----- C ABI used by the Rust tests -------------------------------------------------------------

extern "C" void* hipl_emu_alloc(size_t bytes) {
    size_t n = bytes == 0 ? 1 : bytes;
    void* p = std::calloc(1, n);
    if (!p) return nullptr;
    std::lock_guard<std::mutex> g(emu::g_alloc_mutex);
    emu::g_allocs[reinterpret_cast<uintptr_t>(p)] = bytes;
    return p;
}

extern "C" void hipl_emu_free(void* p) {
    if (!p) return;
    {
        std::lock_guard<std::mutex> g(emu::g_alloc_mutex);
        emu::g_allocs.erase(reinterpret_cast<uintptr_t>(p));
    }
    std::free(p);
}
