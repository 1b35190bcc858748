// Tells which of clusterd's own stdout and stderr are regular files: with output = "inherit" a
// worker gets them at its fd 1 and 2, open for writing, whatever user it runs as.
#pragma once

#include <string>
#include <vector>

namespace clusterd {

// "stdout (/var/log/shop.out)", "stderr (/var/log/shop.err)" for each of fd 1 and 2 that is a
// regular file (fstat S_ISREG); the path as /proc/self/fd shows it, left out when unreadable.
// Pipes, terminals, sockets (the journal) and /dev/null are not listed: truncating them is no
// harm, or impossible.
std::vector<std::string> regular_output_files();

}  // namespace clusterd
