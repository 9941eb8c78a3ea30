/*
 * Replays every file of the given directories through LLVMFuzzerTestOneInput
 * (the emulator's fuzz corpus as a regression test without libFuzzer).
 *   fuzz_emulator_replay DIR...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (4 * 1024 * 1024)

static int replay_file(const char *path, uint8_t *buf)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    size_t n = fread(buf, 1, FUZZ_MAX_INPUT, fp);
    fclose(fp);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

int main(int argc, char **argv)
{
    uint8_t *buf = malloc(FUZZ_MAX_INPUT);
    int files = 0, rc = 0;
    if (buf == NULL || argc < 2) {
        fprintf(stderr, "usage: %s CORPUS-DIR...\n", argv[0]);
        free(buf);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (d == NULL) {
            fprintf(stderr, "cannot open corpus directory %s\n", argv[i]);
            rc = 1;
            continue;
        }
        for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            rc |= replay_file(path, buf);
            files++;
        }
        closedir(d);
    }
    free(buf);
    printf("replayed %d corpus files\n", files);
    return files > 0 ? rc : 1;
}
