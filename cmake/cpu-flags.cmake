# CPU instruction sets for ggml's CPU backend.
#
# GGML_NATIVE (-march=native) would turn on AMX on CPUs that advertise it, and
# on some VMs the OS does not enable tile state, so AMX kernels fault (SIGILL /
# SIGSEGV at ldtilecfg, in llama.cpp too). On x86 we therefore build with
# explicit flags for the features /proc/cpuinfo reports, AMX always off.
# On aarch64 ggml's native detection picks dotprod/i8mm/SVE, and KleidiAI is on.
#
#   -DCOLONY_CPU=auto      (default) detect as above
#   -DCOLONY_CPU=portable  x86: AVX2+FMA+F16C only; others: ggml defaults
#   -DCOLONY_CPU=armv...   aarch64: this -march (e.g. armv8.2-a+dotprod+fp16)

set(COLONY_CPU "auto" CACHE STRING "CPU feature selection for ggml: auto | portable")

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  set(GGML_NATIVE OFF CACHE BOOL "" FORCE)
  set(GGML_AMX_TILE OFF CACHE BOOL "" FORCE)
  set(GGML_AMX_INT8 OFF CACHE BOOL "" FORCE)
  set(GGML_AMX_BF16 OFF CACHE BOOL "" FORCE)
  set(_flags "")
  if(EXISTS /proc/cpuinfo)
    file(STRINGS /proc/cpuinfo _flags REGEX "^flags" LIMIT_COUNT 1)
  endif()
  macro(_colony_feature ggml_opt cpu_flag)
    if(_flags MATCHES " ${cpu_flag}( |$)")
      set(${ggml_opt} ON CACHE BOOL "" FORCE)
    else()
      set(${ggml_opt} OFF CACHE BOOL "" FORCE)
    endif()
  endmacro()
  if(COLONY_CPU STREQUAL "portable" OR NOT _flags)
    foreach(o GGML_SSE42 GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2)
      set(${o} ON CACHE BOOL "" FORCE)
    endforeach()
    foreach(o GGML_AVX512 GGML_AVX512_VBMI GGML_AVX512_VNNI GGML_AVX512_BF16 GGML_AVX_VNNI)
      set(${o} OFF CACHE BOOL "" FORCE)
    endforeach()
  else()
    _colony_feature(GGML_SSE42 sse4_2)
    _colony_feature(GGML_AVX avx)
    _colony_feature(GGML_AVX2 avx2)
    _colony_feature(GGML_FMA fma)
    _colony_feature(GGML_F16C f16c)
    _colony_feature(GGML_BMI2 bmi2)
    _colony_feature(GGML_AVX_VNNI avx_vnni)
    _colony_feature(GGML_AVX512 avx512f)
    _colony_feature(GGML_AVX512_VBMI avx512vbmi)
    _colony_feature(GGML_AVX512_VNNI avx512_vnni)
    _colony_feature(GGML_AVX512_BF16 avx512_bf16)
  endif()
  message(STATUS "colony: x86 CPU flags AVX2=${GGML_AVX2} AVX512=${GGML_AVX512} VNNI=${GGML_AVX512_VNNI} BF16=${GGML_AVX512_BF16} AMX=OFF")
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64|ARM64")
  # Native builds (a phone under Termux, a board) let ggml detect the CPU's
  # features. A cross build (scripts/build-aarch64.sh) names them instead:
  # -DCOLONY_CPU=armv8.2-a+dotprod+fp16 becomes ggml's GGML_CPU_ARM_ARCH.
  if(COLONY_CPU STREQUAL "auto" AND NOT CMAKE_CROSSCOMPILING)
    set(GGML_NATIVE ON CACHE BOOL "" FORCE)
  else()
    set(GGML_NATIVE OFF CACHE BOOL "" FORCE)
    if(COLONY_CPU MATCHES "^armv")
      set(GGML_CPU_ARM_ARCH "${COLONY_CPU}" CACHE STRING "" FORCE)
    endif()
  endif()
  # KleidiAI's source is downloaded by ggml at configure time; where nothing
  # can be downloaded, -DCOLONY_KLEIDIAI=OFF, or point
  # FETCHCONTENT_SOURCE_DIR_KLEIDIAI_DOWNLOAD at an unpacked release.
  option(COLONY_KLEIDIAI "ggml's KleidiAI kernels on aarch64 (downloads their source)" ON)
  set(GGML_CPU_KLEIDIAI ${COLONY_KLEIDIAI} CACHE BOOL "" FORCE)
  message(STATUS "colony: aarch64, GGML_NATIVE=${GGML_NATIVE} GGML_CPU_ARM_ARCH=${GGML_CPU_ARM_ARCH} "
                 "KleidiAI=${GGML_CPU_KLEIDIAI}")
endif()
