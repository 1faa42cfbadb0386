# test_synth: GoogleTest suite for colony_synth and `colony synth`. The command's
# sources (src/cli/cmd_synth.cpp and the option parser args.cpp) are compiled in so
# its error handling is tested too. Meant to be include()d from
# tests/model/CMakeLists.txt once src/model defines colony_synth.
set(_colony_cli_dir ${CMAKE_CURRENT_LIST_DIR}/../../src/cli)
add_executable(test_synth
  ${CMAKE_CURRENT_LIST_DIR}/test_synth.cpp
  ${_colony_cli_dir}/cmd_synth.cpp
  ${_colony_cli_dir}/args.cpp)
target_link_libraries(test_synth PRIVATE colony_synth llama GTest::gtest_main)
gtest_discover_tests(test_synth DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
