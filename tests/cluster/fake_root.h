// A temporary directory standing for "/" in the device probe tests
// (procfs and sysfs files, fake commands), removed after each test.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace colony {

namespace fs = std::filesystem;

class FakeRoot : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/colony-probe-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root = tmpl;
    }
    void TearDown() override { fs::remove_all(root); }

    void write(const std::string &rel, const std::string &text) {
        const fs::path p = fs::path(root) / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }

    std::string script(const std::string &name, const std::string &body) {
        const fs::path p = fs::path(root) / name;
        std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
        fs::permissions(p, fs::perms::owner_all);
        return p.string();
    }

    void cpu(int core, const char *max_khz) {
        const std::string dir = "sys/devices/system/cpu/cpu" + std::to_string(core);
        if (max_khz) {
            write(dir + "/cpufreq/cpuinfo_max_freq", std::string(max_khz) + "\n");
        } else {
            fs::create_directories(fs::path(root) / dir);
        }
    }

    std::string root;
};

}  // namespace colony
