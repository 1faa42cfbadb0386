# Brings the pinned llama.cpp tree (ggml, libllama, vendored cpp-httplib and
# nlohmann::json, llama.cpp's own tools for comparisons) into the build.
#
#   -DCOLONY_LLAMA_DIR=/path/to/llama.cpp   use an existing checkout instead
#
# Without it, scripts/fetch-llama.sh fetches (or reuses) the verified tree in
# the cache (~/.cache/colony). The tree is never patched (DESIGN.md, decision 4).

set(COLONY_LLAMA_DIR "" CACHE PATH "llama.cpp checkout to build against (default: the pinned tree in ~/.cache/colony)")
if(NOT COLONY_LLAMA_DIR)
  execute_process(
    COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/fetch-llama.sh
    OUTPUT_VARIABLE _tree OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "could not fetch the pinned llama.cpp tree (scripts/fetch-llama.sh failed)")
  endif()
  string(REGEX REPLACE ".*\n" "" _tree "${_tree}")
  set(COLONY_LLAMA_DIR "${_tree}" CACHE PATH "" FORCE)
endif()
if(NOT EXISTS "${COLONY_LLAMA_DIR}/include/llama.h")
  message(FATAL_ERROR "COLONY_LLAMA_DIR=${COLONY_LLAMA_DIR} is not a llama.cpp tree (no include/llama.h)")
endif()
message(STATUS "colony: llama.cpp tree ${COLONY_LLAMA_DIR}")

# What we build of the tree: ggml + libllama statically, the common library
# and tools only when asked for by target (llama-bench, rpc-server, ...).
set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_TESTS OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_EXAMPLES OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_SERVER OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_APP OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_TOOLS ON CACHE BOOL "" FORCE)
set(LLAMA_BUILD_COMMON ON CACHE BOOL "" FORCE)
# cpp-httplib is built with OpenSSL (HTTPS for the API) once, for llama.cpp and colony alike
set(LLAMA_OPENSSL ON CACHE BOOL "" FORCE)
set(LLAMA_BUILD_IS_DEV OFF CACHE BOOL "" FORCE)
set(GGML_RPC ON CACHE BOOL "ggml RPC backend, for the llama.cpp RPC comparison" FORCE)
set(GGML_CCACHE ON CACHE BOOL "" FORCE)

include(${CMAKE_CURRENT_LIST_DIR}/cpu-flags.cmake)

add_subdirectory(${COLONY_LLAMA_DIR} ${CMAKE_BINARY_DIR}/llama.cpp EXCLUDE_FROM_ALL)

# Vendored header-only libraries of the same tree.
add_library(colony_vendor INTERFACE)
target_include_directories(colony_vendor SYSTEM INTERFACE ${COLONY_LLAMA_DIR}/vendor)
