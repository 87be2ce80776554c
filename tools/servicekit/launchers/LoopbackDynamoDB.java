import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * Starts DynamoDB Local with its HTTP connector bound to 127.0.0.1 only.
 *
 * <p>DynamoDB Local has no bind-address option and listens on every interface. This main
 * builds the server from the usual command-line arguments, sets the host of the Jetty
 * connector it created, then starts it.
 */
public final class LoopbackDynamoDB {
  private LoopbackDynamoDB() {}

  public static void main(String[] args) throws Exception {
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server server = (Server) field.get(proxy);
    int bound = 0;
    for (Connector connector : server.getConnectors()) {
      if (connector instanceof ServerConnector serverConnector) {
        serverConnector.setHost("127.0.0.1");
        bound++;
      }
    }
    if (bound == 0) {
      throw new IllegalStateException("DynamoDB Local created no connector to bind to 127.0.0.1");
    }
    proxy.start();
    proxy.join();
  }
}
