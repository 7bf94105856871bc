# Find the LibTorch bundled in the project's .venv (scripts/setup installs the pinned torch wheel).
# Override with -DMFT_TORCH_DIR=/path/to/share/cmake/Torch or -DTorch_DIR=...
# Result: imported target `mft_torch` (CPU LibTorch, plus torch_cuda when MFT_WITH_CUDA),
# MFT_TORCH_HAS_CUDA, MFT_TORCH_PYTHON (the venv's python, for tests).
if(NOT MFT_TORCH_DIR AND NOT Torch_DIR)
  file(GLOB _mft_torch_cfg "${CMAKE_CURRENT_SOURCE_DIR}/.venv/lib/python3*/site-packages/torch/share/cmake/Torch")
  if(NOT _mft_torch_cfg)
    message(FATAL_ERROR "mamba-ft: no LibTorch found in ${CMAKE_CURRENT_SOURCE_DIR}/.venv; "
                        "run scripts/setup first, or pass -DMFT_TORCH_DIR=<.../share/cmake/Torch>")
  endif()
  list(GET _mft_torch_cfg 0 MFT_TORCH_DIR)
endif()
if(MFT_TORCH_DIR)
  set(Torch_DIR "${MFT_TORCH_DIR}")
endif()

# Torch's config enables the CUDA language itself when it finds a toolkit: give it our archs through
# TORCH_CUDA_ARCH_LIST (it ignores CMAKE_CUDA_ARCHITECTURES) so that nothing probes for a GPU (none
# here), and point it at nvcc when PATH lacks it.
if(NOT MFT_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  string(REGEX REPLACE "([0-9])([0-9])" "\\1.\\2" _mft_arch_list "${MFT_CUDA_ARCHS}")
  set(ENV{TORCH_CUDA_ARCH_LIST} "${_mft_arch_list}")
endif()

find_package(Torch REQUIRED)
message(STATUS "mamba-ft: LibTorch ${Torch_VERSION} from ${Torch_DIR}")
if(TARGET torch_cuda)
  set(MFT_TORCH_HAS_CUDA ON)
else()
  set(MFT_TORCH_HAS_CUDA OFF)
endif()

get_filename_component(_mft_site "${Torch_DIR}/../../../.." ABSOLUTE)
file(GLOB _mft_py "${_mft_site}/../../../bin/python3")
if(_mft_py)
  get_filename_component(MFT_TORCH_PYTHON "${_mft_py}" ABSOLUTE)
endif()

# An interface target: include dirs + the CPU libraries. torch_cuda is added by MftCuda.cmake when we
# build CUDA code, so a CPU-only build does not load cuBLAS/cuDNN at every process start.
add_library(mft_torch INTERFACE)
target_include_directories(mft_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
target_link_libraries(mft_torch INTERFACE torch_cpu c10)
target_compile_options(mft_torch INTERFACE ${TORCH_CXX_FLAGS})
# This LibTorch's at::parallel_for is built on OpenMP (ATen/Config.h: AT_PARALLEL_OPENMP) and is a
# header template: without -fopenmp our kernels would silently run on one thread. Link the libgomp that
# LibTorch ships (and loads anyway) rather than the compiler's, so one OpenMP runtime is loaded.
target_compile_options(mft_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-fopenmp>)
find_library(MFT_TORCH_GOMP NAMES libgomp.so.1 gomp PATHS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
if(NOT MFT_TORCH_GOMP)
  find_package(OpenMP REQUIRED COMPONENTS CXX)
  set(MFT_TORCH_GOMP OpenMP::OpenMP_CXX)
endif()
target_link_libraries(mft_torch INTERFACE ${MFT_TORCH_GOMP})
get_target_property(_mft_torch_defs torch_cpu INTERFACE_COMPILE_DEFINITIONS)
if(_mft_torch_defs)
  target_compile_definitions(mft_torch INTERFACE ${_mft_torch_defs})
endif()
