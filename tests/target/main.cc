#include "tests/target/target_main.h"

int main(int argc, char** argv) { return barrage::target::Main(argc, argv); }
