# Use ccache when present. PCH builds need relaxed sloppiness or every compile misses
# (../shared/reference/toolchain-notes.md).
find_program(MFT_CCACHE ccache)
if(MFT_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(_mft_launcher ${CMAKE_COMMAND} -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      ${MFT_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_mft_launcher})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_mft_launcher})
  message(STATUS "mamba-ft: ccache ${MFT_CCACHE}")
endif()
