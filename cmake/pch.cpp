// Translation unit that owns the precompiled LibTorch headers reused by every target (CMakeLists.txt).
