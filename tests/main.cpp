// Catch2 main: all cores for LibTorch, poisoned op outputs (NaN) so unwritten elements fail tests.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "core/output.h"

#include <ATen/Parallel.h>

#include <thread>

int main(int argc, char* argv[]) {
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  mft::set_poison_outputs(true);
  return Catch::Session().run(argc, argv);
}
