// A one-file JVM app for launcher/tests/worker_shares.rs, run as a source
// launch (`java ShareServer.java`): listens on $PORT and answers every GET
// with what the JVM made of its environment, as JSON:
// {"processors": Runtime.availableProcessors(), "max_heap": maxMemory()}.
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

public class ShareServer {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "3000"));
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
        server.createContext("/", exchange -> {
            Runtime rt = Runtime.getRuntime();
            byte[] body = String.format("{\"processors\":%d,\"max_heap\":%d}",
                    rt.availableProcessors(), rt.maxMemory()).getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        server.start();
    }
}
