// Writes the tests' tiny synthetic qwen2 model (ChatML template) to argv[1],
// for the Node tests' CTest fixture.
#include <cstdio>
#include <filesystem>
#include <string>

#include "api_test_support.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    try {
        std::filesystem::create_directories(argv[1]);
        std::printf("%s\n", colony::apitest::tiny_qwen2_path(argv[1]).c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "write_tiny_qwen2: %s\n", e.what());
        return 1;
    }
    return 0;
}
