// The daemon's sd_notify pieces, both ways: the directory (notify_directory.h) and sockets
// (notify_worker_socket.h) workers report to (protocols §2.3), and the client clusterd reports
// to systemd with (notify_systemd.h, §2.2). Include the one you use; this is for the daemon.
#pragma once

#include "notify_directory.h"
#include "notify_systemd.h"
#include "notify_worker_socket.h"
