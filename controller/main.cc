#include "controller/cli/cli.h"

int main(int argc, char** argv) { return barrage::cli::Main(argc, argv); }
