# One obs collector on every Nomad client: a system job with the docker driver, reading the
# node's logs, journal and container logs from host volumes, shipping to a store outside the
# cluster.
#
# Each client declares the host volumes (client config, then restart the client):
#
#   client {
#     host_volume "var-log"           { path = "/var/log"                 read_only = true }
#     host_volume "docker-containers" { path = "/var/lib/docker/containers" read_only = true }
#     host_volume "obs-collector"     { path = "/var/lib/obs/collector" }
#   }
#
# The ingest token is a Nomad variable: `obs token create nomad --role ingest` on the store,
# then `nomad var put nomad/jobs/obs-collector ingest_token=@/etc/obs/tokens/nomad.token`.
#
#   nomad job run deploy/nomad/collector.nomad.hcl

job "obs-collector" {
  type        = "system"
  datacenters = ["*"]

  group "collector" {
    volume "var-log" {
      type      = "host"
      source    = "var-log"
      read_only = true
    }
    volume "docker-containers" {
      type      = "host"
      source    = "docker-containers"
      read_only = true
    }
    volume "obs-collector" {
      type   = "host"
      source = "obs-collector"
    }

    task "collector" {
      driver = "docker"
      user   = "root" # container logs are root-only; mounts are read-only

      config {
        image        = "obs:0.1.0"
        network_mode = "host" # host metrics and host_name are the node's
        args         = ["collector", "--config", "/local/obs.toml", "--data-dir", "/var/lib/obs/collector"]
        cap_drop     = ["all"]
        cap_add      = ["dac_read_search", "net_raw"]
      }

      volume_mount {
        volume      = "var-log" # /var/log/journal and the node's own log files
        destination = "/var/log"
        read_only   = true
      }
      volume_mount {
        volume      = "docker-containers"
        destination = "/var/lib/docker/containers"
        read_only   = true
      }
      volume_mount {
        volume      = "obs-collector" # the spool survives the task's restarts
        destination = "/var/lib/obs/collector"
      }

      # The collector's whole config; every volume above is a path it names.
      template {
        destination = "local/obs.toml"
        data        = <<EOT
version = 1
[collector]
store = "https://store.mesh:9701"
token_file = "/secrets/ingest.token"
data_dir = "/var/lib/obs/collector"
docker_containers_dir = "/var/lib/docker/containers"
[collector.journald]
directory = "/var/log/journal"
[[collector.files]]
paths = ["/var/log/syslog", "/var/log/*.log"]
EOT
      }

      template {
        destination = "secrets/ingest.token"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/obs-collector\" }}{{ .ingest_token }}{{ end }}"
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}
