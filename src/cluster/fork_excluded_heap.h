/* src/cluster/fork_excluded_heap.h — the C face of ForkExcludedHeap
 * (fork_excluded_heap.hpp): the functions raft_c.c installs as libraft's heap
 * (struct raft_heap; `data` is unused). Any thread. */
#ifndef CATGA_FORK_EXCLUDED_HEAP_H
#define CATGA_FORK_EXCLUDED_HEAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void *catga_fx_malloc(void *data, size_t size);
void catga_fx_free(void *data, void *ptr);
void *catga_fx_calloc(void *data, size_t count, size_t size);
void *catga_fx_realloc(void *data, void *ptr, size_t size);

#ifdef __cplusplus
}
#endif

#endif
