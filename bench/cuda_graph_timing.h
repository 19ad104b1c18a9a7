// How the decode benchmarks time GPU work (decode steps run as CUDA graphs):
// a median of CUDA-event timings of replays on one stream after an untimed
// warm-up, and a graph of consecutive calls captured once and replayed.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "bench/cuda_bench_util.h"

namespace tessera::bench {

// Median over `replays` runs of `replay` (after an untimed one), each timed
// by CUDA events on the idle `stream`, divided by the `calls` it makes.
inline double MedianPerCall(cudaStream_t stream, const std::function<void()>& replay, int calls, int replays) {
  cudaEvent_t start, stop;
  BENCH_CHECK(cudaEventCreate(&start));
  BENCH_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i <= replays; ++i) {
    BENCH_CHECK(cudaEventRecord(start, stream));
    replay();
    BENCH_CHECK(cudaEventRecord(stop, stream));
    BENCH_CHECK(cudaEventSynchronize(stop));
    float t = 0.0f;
    BENCH_CHECK(cudaEventElapsedTime(&t, start, stop));
    if (i > 0) ms.push_back(t / calls);
  }
  BENCH_CHECK(cudaEventDestroy(start));
  BENCH_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Milliseconds of one call(n) on the GPU: `calls` calls (n = 0, 1, ...) on
// `stream` captured in one CUDA graph, replayed as MedianPerCall times it.
inline double GraphMs(cudaStream_t stream, const std::function<void(int64_t)>& call, int calls, int replays) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  BENCH_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  for (int n = 0; n < calls; ++n) call(n);
  BENCH_CHECK(cudaStreamEndCapture(stream, &graph));
  BENCH_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  const double ms = MedianPerCall(stream, [&] { BENCH_CHECK(cudaGraphLaunch(exec, stream)); }, calls, replays);
  BENCH_CHECK(cudaGraphExecDestroy(exec));
  BENCH_CHECK(cudaGraphDestroy(graph));
  return ms;
}

}  // namespace tessera::bench
