// Must NOT compile: sending a struct that declares no catga_message.
#include "catga/application.hpp"
struct Plain {
  int x = 0;
};
int main() {
  catga::Application* app = nullptr;
  (void)app->send(Plain{});
}
