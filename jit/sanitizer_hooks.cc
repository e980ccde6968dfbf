// Defaults for the sanitizer builds (`bazel test --config=asan|tsan`, see .bazelrc), compiled
// into every binary that can dlopen a vendor library: //jit:dynamic_library depends on
// this always-linked library. Empty in a normal build.
#if defined(__SANITIZE_ADDRESS__)

// LeakSanitizer reports memory that nothing points to at exit. The vendor libraries we
// dlopen allocate in their own constructors and never free it (libamdhip64 5.2 leaks
// 408 bytes from its static initializers, so any binary that probes for a HIP device
// "leaks"): not ours to fix, and it would hide our own leaks behind a permanent failure.
// Only allocations made inside these libraries are suppressed.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libamdhip64.so\n"
         "leak:libamd_comgr.so\n"
         "leak:libhsa-runtime64.so\n"
         "leak:libnvrtc.so\n"
         "leak:libnvrtc-builtins.so\n"
         "leak:libcuda.so\n";
}

#endif  // defined(__SANITIZE_ADDRESS__)

#if defined(__SANITIZE_THREAD__)

// ThreadSanitizer sees the vendor libraries' own locking only partly (they are not
// instrumented): NVRTC's internal mutex on freshly malloc'ed memory reads as a race when
// two threads compile at once. Reports whose racing access is inside these libraries are
// theirs; every access in our code is still checked.
extern "C" const char* __tsan_default_suppressions() {
  return "race:libnvrtc.so\n"
         "race:libnvrtc-builtins.so\n"
         "race:libamdhip64.so\n"
         "race:libamd_comgr.so\n"
         "race:libLLVM-15.so\n"
         "race:libcuda.so\n";
}

#endif  // defined(__SANITIZE_THREAD__)
