// Must NOT compile: wire names are lowercase and end in a version.
#include "catga/message.hpp"
struct Bad {
  using catga_message = catga::Command<int, "Orders.Create">;
};
int main() { return static_cast<int>(catga::wire_name_of<Bad>.size()); }
