/*
 * The memory suite's random-sizes case (bench/memory.ts randomSizes) on
 * native allocators, for reference: the same generator (mulberry32), the
 * same seed and the same steps, so the live set at the read is the one the
 * JS arenas see. Prints, per N, the live requested bytes and the bytes the
 * allocator holds for them in pages that hold live objects:
 *
 *   jemalloc   stats.active (pages of active slabs and large extents)
 *   mimalloc   the committed bytes of every page of the default heap
 *              (mi_heap_visit_blocks areas)
 *   glibc      arena + mmapped bytes less the free top chunk
 *
 * Built three times by bench/native/run.mjs, with -DUSE_JEMALLOC,
 * -DUSE_MIMALLOC or neither. One thread: the case is single-threaded.
 * Run one N per process (each allocator keeps state across runs).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/mman.h>

#if defined(USE_JEMALLOC)
#include <jemalloc/jemalloc.h>
#define NAME "jemalloc " JEMALLOC_VERSION
#elif defined(USE_MIMALLOC)
#include <mimalloc.h>
#define STR2(x) #x
#define STR(x) STR2(x)
#define NAME "mimalloc " STR(MI_MALLOC_VERSION)
#define malloc mi_malloc
#define free mi_free
#else
#include <malloc.h>
#define STR2(x) #x
#define STR(x) STR2(x)
#define NAME "glibc " STR(__GLIBC__) "." STR(__GLIBC_MINOR__)
#endif

static uint32_t rng_a;
static double rnd(void) {
  rng_a += 0x6d2b79f5u;
  uint32_t a = rng_a;
  uint32_t t = (a ^ (a >> 15)) * (1u | a);
  t = (t + ((t ^ (t >> 7)) * (61u | t))) ^ t;
  return (double)(t ^ (t >> 14)) / 4294967296.0;
}

#if defined(USE_MIMALLOC)
static size_t mi_active;
static bool visit(const mi_heap_t *heap, const mi_heap_area_t *area, void *block, size_t size, void *arg) {
  (void)heap; (void)size; (void)arg;
  if (block == NULL) mi_active += area->committed;
  return true;
}
#endif

/* Bytes held in pages that hold live objects (see the header). */
static double held(void) {
#if defined(USE_JEMALLOC)
  uint64_t epoch = 1;
  size_t sz = sizeof(epoch);
  mallctl("epoch", &epoch, &sz, &epoch, sz);
  size_t active = 0;
  sz = sizeof(active);
  mallctl("stats.active", &active, &sz, NULL, 0);
  return (double)active;
#elif defined(USE_MIMALLOC)
  mi_active = 0;
  mi_heap_visit_blocks(mi_heap_get_default(), false, visit, NULL);
  return (double)mi_active;
#else
  struct mallinfo2 m = mallinfo2();
  return (double)(m.arena + m.hblkhd - m.keepcost);
#endif
}

static void run(uint32_t n, double maxBytes, uint32_t seed) {
  rng_a = seed;
  size_t cap = 1 << 22, len = 0;
  /* The bookkeeping arrays come from the OS, not from the allocator measured. */
  void **ptrs = mmap(NULL, cap * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint32_t *sizes = mmap(NULL, cap * sizeof(uint32_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  double live = 0;
  double base = held();
  uint64_t steps = 0;
  double limit = 64 * ceil(maxBytes / ((n + 1) / 2.0));
  for (int phase = 0; phase < 2; phase++) {
    double freeP = phase == 0 ? 0.5 : 1;
    uint64_t churn = 2 * (len > 1024 ? len : 1024);
    for (uint64_t k = 0;; k++) {
      if (phase == 0 && !(live < maxBytes / 2 && steps < limit)) break;
      if (phase == 1 && k >= churn) break;
      uint32_t s = 1 + (uint32_t)floor(rnd() * n);
      int f = rnd() < freeP;
      void *p = malloc(s);
      memset(p, 1, s < 64 ? s : 64);
      ptrs[len] = p;
      sizes[len++] = s;
      live += s;
      if (f) {
        size_t i = (size_t)floor(rnd() * len);
        free(ptrs[i]);
        live -= sizes[i];
        ptrs[i] = ptrs[len - 1];
        sizes[i] = sizes[len - 1];
        len--;
      }
      steps++;
    }
  }
  double h = held() - base;
  printf("{\"allocator\":\"%s\",\"n\":%u,\"maxBytes\":%.0f,\"liveBytes\":%.0f,\"objects\":%zu,\"heldBytes\":%.0f,\"heldPerLive\":%.4f}\n", NAME, n, maxBytes, live, len, h, h / live);
  for (size_t i = 0; i < len; i++) free(ptrs[i]);
  munmap(ptrs, cap * sizeof(void *));
  munmap(sizes, cap * sizeof(uint32_t));
}

int main(int argc, char **argv) {
  uint32_t seed = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 20261202u;
  for (int i = 2; i + 1 < argc; i += 2) run((uint32_t)strtoul(argv[i], NULL, 10), strtod(argv[i + 1], NULL), seed);
  return 0;
}
