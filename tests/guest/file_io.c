/* File I/O: create, write, seek, read back, stat, rename, list a directory, unlink. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    char dir[] = "kiln-io-XXXXXX";
    char tmpl[64];
    snprintf(tmpl, sizeof tmpl, "/tmp/%s", dir);
    if (!mkdtemp(tmpl)) { perror("mkdtemp"); return 1; }
    char path[128], path2[128];
    snprintf(path, sizeof path, "%s/data.txt", tmpl);
    snprintf(path2, sizeof path2, "%s/renamed.txt", tmpl);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 1000; i++) fprintf(f, "line %04d %s\n", i, i % 3 ? "abc" : "xyz");
    fclose(f);
    struct stat st;
    stat(path, &st);
    printf("size after write: %lld\n", (long long)st.st_size);
    int fd = open(path, O_RDWR);
    lseek(fd, 5000, SEEK_SET);
    char buf[64] = {0};
    ssize_t n = read(fd, buf, 30);
    printf("read %zd bytes at 5000: %.30s\n", n, buf);
    lseek(fd, 0, SEEK_END);
    write(fd, "tail\n", 5);
    pread(fd, buf, 5, st.st_size);
    printf("pread tail: %.4s\n", buf);
    close(fd);
    if (rename(path, path2) != 0) perror("rename");
    printf("old name exists: %d\n", access(path, F_OK) == 0);
    DIR *d = opendir(tmpl);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') { printf("entry: %s\n", e->d_name); files++; }
    closedir(d);
    f = fopen(path2, "r");
    char line[64];
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    printf("lines read back: %d, files: %d\n", lines, files);
    unlink(path2);
    rmdir(tmpl);
    printf("cleaned up: %d\n", access(tmpl, F_OK) != 0);
    return 0;
}
