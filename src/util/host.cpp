#include "util/host.h"

#include <unistd.h>

namespace colony {

std::optional<std::string> host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof(buf) - 1) != 0)
        return std::nullopt;
    return std::string(buf);
}

}  // namespace colony
