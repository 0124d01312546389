package main

import (
	"errors"
	"fmt"
	"os"
)

// nginxBinary is where Debian's nginx package (bookworm: the package "nginx"; nginx-light and
// nginx-core only add modules) installs the server.
const nginxBinary = "/usr/sbin/nginx"

// nginxConf is the image's configuration: the welcome page on port 80 and the logs to the
// container's output, as upstream's image. IPv4 only: a node kernel whose IPv6 is a module not
// loaded (user-mode-linux's) would make `listen [::]:80` fail the start.
const nginxConf = `# nginx of Spiderpool-Go's user-guide images (hack/images): a static page on port 80.
user nginx;
worker_processes auto;
pid /run/nginx.pid;
# A symbolic link to /dev/stderr: the container's log.
error_log /var/log/nginx/error.log notice;

events {
    worker_connections 1024;
}

http {
    types {
        text/html                html htm;
        text/css                 css;
        text/plain               txt;
        application/javascript   js;
        application/json         json;
        image/png                png;
        image/svg+xml            svg;
    }
    default_type application/octet-stream;
    # A symbolic link to /dev/stdout.
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;

    server {
        listen 80;
        server_name _;
        root /usr/share/nginx/html;
        index index.html;
    }
}
`

const nginxIndex = `<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>This nginx answers for a Spiderpool-Go user guide.</p>
</body>
</html>
`

// nginxContent is Debian's nginx with its loader and libraries, our configuration and page, the
// accounts nginx's workers run as (uid 101, as upstream's image) and the directories it writes.
func nginxContent(Options) (Content, error) {
	data, err := os.ReadFile(nginxBinary)
	if errors.Is(err, os.ErrNotExist) {
		return Content{}, &MissingError{Paths: []string{nginxBinary}, Hint: "install the Debian package nginx"}
	}
	if err != nil {
		return Content{}, err
	}
	libs, err := sharedLibraries(nginxBinary)
	if err != nil {
		return Content{}, err
	}
	version, err := debianVersion("nginx")
	if err != nil {
		return Content{}, err
	}
	files := append([]tarFile{
		executable(nginxBinary, data),
		regular("/etc/nginx/nginx.conf", []byte(nginxConf)),
		regular("/usr/share/nginx/html/index.html", []byte(nginxIndex)),
		regular("/etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnginx:x:101:101:nginx:/nonexistent:/sbin/nologin\n")),
		regular("/etc/group", []byte("root:x:0:\nnginx:x:101:\n")),
		// glibc reads the accounts through NSS: files only, nothing to load.
		regular("/etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n")),
		symLink("/var/log/nginx/access.log", "/dev/stdout"),
		symLink("/var/log/nginx/error.log", "/dev/stderr"),
		// The temporary files of request bodies and proxies (Debian's --http-*-temp-path).
		directory("/var/lib/nginx", 0o755),
		directory("/run", 0o755),
	}, libs...)
	return Content{
		Files:   files,
		Version: version,
		Summary: fmt.Sprintf("nginx %s (Debian nginx) with %d shared objects", version, len(libs)),
	}, nil
}
