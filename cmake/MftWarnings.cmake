# Warnings on for our own code (not for LibTorch headers, which come in as SYSTEM includes).
function(mft_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow=local -Wnon-virtual-dtor -Winvalid-pch -Wno-psabi>)
  if(MFT_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
  if(MFT_SANITIZE)
    string(REPLACE ";" "," _san "${MFT_SANITIZE}")
    # vptr: LibTorch is built without sanitizers, so its classes' RTTI does not satisfy UBSan's checks.
    # Every UBSan finding stops the test (a report alone would not fail it).
    target_compile_options(${target} PRIVATE -fsanitize=${_san} -fno-omit-frame-pointer -fno-sanitize=vptr
                           -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${_san} -fno-sanitize=vptr)
  endif()
endfunction()
