#pragma once
// What this process may use: memory (the cgroup's limit, else the kernel's MemAvailable, shared among the
// ranks a launcher started on this node) and threads (a multiple of the cores). Jobs compare their
// estimates with these before allocating. No LibTorch.
#include <cstdint>
#include <string>

namespace mft {

struct MemoryBudget {
  uint64_t bytes = 0;            // what one process may use, its present RSS included
  std::string source;            // "cgroup limit 8.0 GiB", "MemAvailable 21.3 GiB + this process's 0.4 GiB"
  int local_ranks = 1;           // processes of this job on this node (LOCAL_WORLD_SIZE, SLURM_NTASKS_PER_NODE, ...)
  std::string describe() const;  // "21.7 GiB (MemAvailable ...; divided among 2 local ranks)"
};

// Reads /proc/meminfo, /proc/self/cgroup and the cgroup's memory.max / memory.limit_in_bytes.
MemoryBudget memory_budget();

// The processes a launcher started on this node: torchrun's LOCAL_WORLD_SIZE, Slurm's
// SLURM_NTASKS_PER_NODE (or SLURM_TASKS_PER_NODE's first count), Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE; 1 alone.
int local_ranks();

// Threads beyond this only add contention (2048 threads took 41 s to start a command on 2 cores).
int max_threads();  // 4 x the cores

// "1.5 GiB", "312 MiB".
std::string format_bytes(double bytes);

}  // namespace mft
