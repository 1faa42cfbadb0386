# Cross build for aarch64 Linux with Debian's cross toolchain
# (crossbuild-essential-arm64) and multiarch :arm64 libraries (libzmq, OpenSSL,
# GoogleTest under /usr/lib/aarch64-linux-gnu). scripts/build-aarch64.sh
# installs both and configures build-aarch64/ with this file.
#
# Target programs that the build or CTest runs (the synthetic model writer,
# the test binaries) run under qemu-aarch64; the CPU model comes from QEMU_CPU
# (e.g. QEMU_CPU=cortex-a76 or max), read by qemu-user itself.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

find_program(COLONY_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(COLONY_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${COLONY_QEMU_AARCH64})
endif()

# Headers and libraries from the :arm64 packages only; programs (python, node,
# cmake's helpers) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
