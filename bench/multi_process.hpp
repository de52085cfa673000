// catga-bench --mode multi-process: each node is its own OS process.
//
// The parent starts N children (this executable with the hidden option
// `--serve-node`, the parent's own options, and the node's ports and data
// directory), finds the leader, and asks one node to run the measurement in
// its own process. Children talk to the parent in lines on stdin/stdout:
//
//   parent → child   child → parent
//   status           "<role> <ready 0|1> <applied index>"
//   run              "progress <completed>" about once a second, then the JSON result
//   (end of input)   the child stops its node and exits
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "bench.hpp"

namespace bench {

// Where a `--serve-node` child lives in the cluster.
struct NodePlacement {
  std::size_t index = 0;                    // node id - 1
  std::vector<int> raft_ports, peer_ports;  // of every node, on 127.0.0.1
  std::filesystem::path data_dir;
};

// The child's side: runs the node until its stdin ends.
int serve_node(const Settings& s, const NodePlacement& where);

// The parent's side: `args` are the parent's own options, passed on to every
// child. With a non-empty `samples_csv`, writes each node's RSS and data
// directory size about once a second while the load runs.
int run_multi_process(const Settings& s, const std::vector<std::string>& args, const std::string& samples_csv);

}  // namespace bench
