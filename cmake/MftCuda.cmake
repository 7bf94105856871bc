# Decide whether cuda/ is built. AUTO: when nvcc is usable and the LibTorch has CUDA.
set(MFT_WITH_CUDA OFF)
if(MFT_CUDA STREQUAL "ON" OR MFT_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER AND MFT_TORCH_HAS_CUDA)
    set(MFT_WITH_CUDA ON)
  elseif(MFT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "mamba-ft: MFT_CUDA=ON but nvcc (${CMAKE_CUDA_COMPILER}) or a CUDA LibTorch "
                        "(torch_cuda: ${MFT_TORCH_HAS_CUDA}) is missing")
  endif()
elseif(NOT MFT_CUDA STREQUAL "OFF")
  message(FATAL_ERROR "mamba-ft: MFT_CUDA must be AUTO, ON or OFF; got '${MFT_CUDA}'")
endif()
if(MFT_WITH_CUDA)
  enable_language(CUDA)
  set(CMAKE_CUDA_ARCHITECTURES ${MFT_CUDA_ARCHS})
  # --no-as-needed: nothing of ours calls torch_cuda yet, but it must be loaded for LibTorch's CUDA
  # hooks (at::hasCUDA, the CUDA dispatch key) to exist at run time.
  target_link_libraries(mft_torch INTERFACE "-Wl,--no-as-needed" torch_cuda c10_cuda "-Wl,--as-needed")
endif()
message(STATUS "mamba-ft: CUDA kernels ${MFT_WITH_CUDA} (MFT_CUDA=${MFT_CUDA}, archs ${MFT_CUDA_ARCHS})")
