#pragma once
// What the op library is and what it registered: for `mamba-ft info` and the registration tests.
#include <string>
#include <vector>

namespace mft {

// mamba-ft's version (from CMake's project version).
std::string version();

// Absolute path of the loaded op library (libmft_ops.so).
std::string op_library_path();

// True when this op library was built with the CUDA kernels of cuda/.
bool built_with_cuda();

// Distinct threads that at::parallel_for, as compiled into this library, actually runs on (catches a
// build without OpenMP, where ATen's parallel_for silently runs serially).
int kernel_threads_used();

struct RegisteredOp {
  std::string name;               // "mft::selective_scan"
  std::vector<std::string> keys;  // backends with a kernel: "CPU", "CUDA", "Autograd", "AutocastCPU", ...
};

// Every mft:: op in the dispatcher, sorted by name.
std::vector<RegisteredOp> registered_ops();

// The dispatch keys this listing reports on, in order.
const std::vector<std::string>& reported_dispatch_keys();

}  // namespace mft
