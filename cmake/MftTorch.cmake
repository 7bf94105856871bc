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

# Torch's own CMake config, for this CUDA build of the wheel, requires a CUDA toolkit even to link
# the CPU part. So: with nvcc available (and MFT_CUDA not OFF) use it; otherwise import the wheel's
# CPU libraries directly, which is all a CPU build needs.
set(_mft_nvcc "")
if(NOT MFT_CUDA STREQUAL "OFF")
  if(CMAKE_CUDA_COMPILER)
    set(_mft_nvcc "${CMAKE_CUDA_COMPILER}")
  elseif(DEFINED ENV{CUDACXX})
    set(_mft_nvcc "$ENV{CUDACXX}")
  else()
    find_program(_mft_nvcc_found nvcc PATHS /usr/local/cuda/bin)
    if(_mft_nvcc_found)
      set(_mft_nvcc "${_mft_nvcc_found}")
    endif()
  endif()
endif()
get_filename_component(TORCH_INSTALL_PREFIX "${Torch_DIR}/../../.." ABSOLUTE)
file(STRINGS "${Torch_DIR}/TorchConfigVersion.cmake" _mft_torch_version REGEX "PACKAGE_VERSION \"")
string(REGEX REPLACE ".*\"([^\"]+)\".*" "\\1" Torch_VERSION "${_mft_torch_version}")

if(_mft_nvcc)
  # Torch's config enables the CUDA language itself: point it at nvcc (it is not always on PATH) and
  # give it our archs through TORCH_CUDA_ARCH_LIST (it ignores CMAKE_CUDA_ARCHITECTURES), so that
  # nothing probes for a GPU.
  set(CMAKE_CUDA_COMPILER "${_mft_nvcc}")
  string(REGEX REPLACE "([0-9])([0-9])" "\\1.\\2" _mft_arch_list "${MFT_CUDA_ARCHS}")
  set(ENV{TORCH_CUDA_ARCH_LIST} "${_mft_arch_list}")
  find_package(Torch REQUIRED)
  get_target_property(_mft_torch_defs torch_cpu INTERFACE_COMPILE_DEFINITIONS)
else()
  if(MFT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "mamba-ft: MFT_CUDA=ON but no nvcc found (set CUDACXX or -DCMAKE_CUDA_COMPILER)")
  endif()
  set(TORCH_INCLUDE_DIRS "${TORCH_INSTALL_PREFIX}/include" "${TORCH_INSTALL_PREFIX}/include/torch/csrc/api/include")
  foreach(_lib torch_cpu c10)
    add_library(${_lib} SHARED IMPORTED)
    set_target_properties(${_lib} PROPERTIES IMPORTED_LOCATION "${TORCH_INSTALL_PREFIX}/lib/lib${_lib}.so")
  endforeach()
  set(TORCH_CXX_FLAGS "")
  set(_mft_torch_defs USE_DISTRIBUTED USE_C10D_GLOO USE_RPC USE_TENSORPIPE)  # as Torch's config sets them
  # libtorch_cpu of the CUDA wheel needs the CUDA runtime libraries shipped in site-packages/nvidia.
  file(GLOB _mft_nvidia_libs "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
  foreach(_dir ${_mft_nvidia_libs})
    list(APPEND _mft_rpath_link "-Wl,-rpath-link,${_dir}")
  endforeach()
endif()
if(_mft_nvcc)
  message(STATUS "mamba-ft: LibTorch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}, CUDA toolkit of ${_mft_nvcc}")
else()
  message(STATUS "mamba-ft: LibTorch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}, CPU libraries only")
endif()
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
