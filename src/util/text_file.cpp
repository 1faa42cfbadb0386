#include "util/text_file.h"

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace colony {

std::string read_text_file(const std::string &path, size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(ErrorCode::kNotFound, "cannot open '" + path + "'");
    std::ostringstream out;
    out << in.rdbuf();
    if (in.bad())
        throw Error(ErrorCode::kNotFound, "cannot read '" + path + "'");
    std::string text = out.str();
    if (text.size() > max_bytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    "'" + path + "' is larger than " + std::to_string(max_bytes) + " bytes");
    }
    return text;
}

}  // namespace colony
