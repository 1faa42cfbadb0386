// colony discover: lists the coordinators whose beacons this machine hears
// on the local network (net/discovery.h; docs/cluster.md, "Discovery").
#include <cstdio>

#include "cli/args.h"
#include "cli/cluster_cli.h"
#include "cli/commands.h"

namespace colony {

int cmd_discover(int argc, char **argv) {
    DiscoverArgs d;
    ArgParser p("colony discover",
                "List the colony coordinators announcing themselves on the local network\n"
                "(UDP beacons: cluster name, key fingerprint, control and API ports; no secrets).\n"
                "A join token's coordinator key has the fingerprint shown here.");
    add_discover_args(p, &d);
    p.add("", "--seconds", "S", "how long to listen (same as --discover-seconds)", &d.seconds);
    p.parse(argc, argv);
    if (p.help_requested()) {
        std::fputs(p.usage().c_str(), stdout);
        return 0;
    }
    std::fputs(format_heard(discover_all(d)).c_str(), stdout);
    return 0;
}

}  // namespace colony
