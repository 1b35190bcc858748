// The upgrade state's JSON: written and read back whole; a format this binary does not know, or
// a document that is not a state, refused with a reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "upgrade_state.h"

namespace clusterd {
namespace {

UpgradeState sample_state() {
  UpgradeState state;
  state.from_version = "0.1.0";
  state.config = "workers = 2\ncommand = [\"./srv\"]\n";
  state.config_file = "/etc/clusterd/shop.toml";
  state.executable = "/srv/shop/bin/server";
  state.user = WorkerUser{Credentials{33, 33, {33, 4}}, UserEnv{"www-data", "/var/www"}};
  state.generation = 3;
  state.next_instance = 17;
  state.counters.restarts = 4;
  state.counters.last_reload = Duration(1500);
  state.listeners.push_back(
      {"http", "127.0.0.1:8000", 4096, "", 0, true, {{0, 5}, {1, 6}}, ReuseportSteering::Handover{11, 12, 13, 4096, {{1, 6}, {0, 5}}}});
  state.control_fd = 7;
  state.control_path = "/run/clusterd/shop.sock";
  state.client_fd = 8;
  state.cgroup_parent = "/sys/fs/cgroup/system.slice/shop.service";
  state.cgroup_parent_fd = 9;
  state.slots.push_back({SlotState::backoff, 3, 2, WorkerExit{KilledBySignal{9}}, Duration(2500)});
  state.slots.push_back({SlotState::running, 1, 0, WorkerExit{StartFailure{"execve", 2, "/srv/app"}}, std::nullopt});
  HandedWorker worker;
  worker.id = WorkerId{1, 3, 16};
  worker.pid = 4242;
  worker.uptime_s = 12.5;
  worker.restarts = 2;
  worker.notify_status = std::string("serving \xff");
  worker.notify_fd = 10;
  worker.notify_path = "/run/clusterd/shop.notify.x/w1-3-16.sock";
  worker.cgroup = "worker.1.3.16";
  state.workers.push_back(worker);
  return state;
}

TEST(UpgradeState, ReadsBackWhatItWrote) {
  const UpgradeState state = sample_state();
  const auto read = read_upgrade_state(write_upgrade_state(state));
  ASSERT_TRUE(read.has_value()) << read.error();
  EXPECT_EQ(read->config, state.config);
  EXPECT_EQ(read->config_file, state.config_file);
  EXPECT_EQ(read->generation, 3U);
  EXPECT_EQ(read->executable, "/srv/shop/bin/server");
  EXPECT_EQ(read->user.credentials, (Credentials{33, 33, {33, 4}}));
  ASSERT_TRUE(read->user.user_env.has_value());
  EXPECT_EQ(read->user.user_env->home, "/var/www");
  EXPECT_EQ(read->next_instance, 17U);
  EXPECT_EQ(read->counters.restarts, 4U);
  EXPECT_EQ(read->counters.last_reload, Duration(1500));
  ASSERT_EQ(read->listeners.size(), 1U);
  EXPECT_TRUE(read->listeners[0].per_slot);
  EXPECT_EQ(read->listeners[0].sockets.size(), 2U);
  EXPECT_EQ(read->listeners[0].sockets[1].fd, 6);
  ASSERT_TRUE(read->listeners[0].steering.has_value());
  EXPECT_EQ(read->listeners[0].steering->program_fd, 13);
  EXPECT_EQ(read->listeners[0].steering->targets, (std::vector<std::pair<int, int>>{{1, 6}, {0, 5}}));
  ASSERT_EQ(read->slots.size(), 2U);
  EXPECT_EQ(read->slots[0].state, SlotState::backoff);
  EXPECT_EQ(read->slots[0].restarts, 3);
  EXPECT_EQ(read->slots[0].failures, 2);
  EXPECT_EQ(read->slots[0].last_exit, WorkerExit{KilledBySignal{9}});
  EXPECT_EQ(read->slots[0].restart_in, Duration(2500));
  EXPECT_EQ(read->slots[1].last_exit, (WorkerExit{StartFailure{"execve", 2, "/srv/app"}}));
  EXPECT_EQ(read->slots[1].restart_in, std::nullopt);
  ASSERT_EQ(read->workers.size(), 1U);
  EXPECT_EQ(read->workers[0].id, (WorkerId{1, 3, 16}));
  EXPECT_EQ(read->workers[0].pid, 4242);
  EXPECT_EQ(read->workers[0].uptime_s, 12.5);
  EXPECT_EQ(read->workers[0].notify_status, "serving \xef\xbf\xbd");  // not UTF-8: U+FFFD, never refused
  EXPECT_EQ(read->workers[0].cgroup, "worker.1.3.16");
  EXPECT_EQ(read->workers[0].stdout_fd, std::nullopt);
  EXPECT_THAT(handed_fds(*read), ::testing::UnorderedElementsAre(5, 6, 7, 8, 9, 10, 11, 12, 13));
}

TEST(UpgradeState, AFormatFromTheFutureIsRefused) {
  std::string text = write_upgrade_state(sample_state());
  text.replace(text.find("\"format\":1"), 10, "\"format\":2");
  EXPECT_EQ(read_upgrade_state(text).error(), "format 2 is not one this clusterd reads (1 to 1)");
}

TEST(UpgradeState, WhatIsNotAStateIsRefused) {
  EXPECT_THAT(read_upgrade_state("").error(), ::testing::StartsWith("not a state this clusterd reads"));
  EXPECT_THAT(read_upgrade_state("{\"format\":1}").error(), ::testing::StartsWith("not a state this clusterd reads"));
  std::string text = write_upgrade_state(sample_state());
  text.replace(text.find("\"pid\":4242"), 10, "\"pid\":-1");
  EXPECT_EQ(read_upgrade_state(text).error(), "a worker without a pid or slot");
}

}  // namespace
}  // namespace clusterd
