# colony_synth: synthetic GGUF models with random weights, the real shapes of known models and
# a real tokenizer (`colony synth`). Meant to be include()d from src/model/CMakeLists.txt.
# Needs the targets llama, ggml and colony_util, and COLONY_LLAMA_DIR (cmake/llama.cmake), whose
# models/ folder holds the vocab GGUFs used by default.
add_library(colony_synth STATIC
  ${CMAKE_CURRENT_LIST_DIR}/synth.cpp
  ${CMAKE_CURRENT_LIST_DIR}/synth_write.cpp)
target_link_libraries(colony_synth PUBLIC colony_util ggml llama Threads::Threads)
target_compile_definitions(colony_synth PRIVATE COLONY_LLAMA_DIR="${COLONY_LLAMA_DIR}")
