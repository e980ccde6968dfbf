/* The launch of one grid on the host backend (jit/host), shared by the host runtime and
 * the host section of kernels/prelude.h.
 *
 * A kernel compiled for the host gets an entry `<kernel>_host_grid(grid, args)` (see
 * ROPE_HOST_ENTRY) that runs the blocks [first_block, last_block) of the grid, numbered
 * x fastest, each as block[0] * block[1] * block[2] threads in turn; the runtime spreads
 * the blocks of a launch over its worker threads. `args` is the cuLaunchKernel-style
 * argument array. */
#ifndef ROPE_JIT_KERNELS_HOST_GRID_H_
#define ROPE_JIT_KERNELS_HOST_GRID_H_

typedef struct RopeHostGrid {
  unsigned grid[3];  /* gridDim x, y, z */
  unsigned block[3]; /* blockDim x, y, z */
  unsigned long long first_block;
  unsigned long long last_block;
} RopeHostGrid;

typedef void (*RopeHostGridEntry)(const RopeHostGrid* grid, void** args);

#endif /* ROPE_JIT_KERNELS_HOST_GRID_H_ */
